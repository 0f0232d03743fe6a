-- name: claim_batch
-- Claims up to $3 runnable jobs of the given tasks (and queues, when $2 is not null) in
-- priority order, then oldest run_at. SKIP LOCKED lets any number of claimers run side by
-- side without waiting on each other; each claim draws a fresh lease id for fencing, and
-- the lease length is the task's own ($4, parallel to $1).
WITH picked AS (
    SELECT id
    FROM /*schema*/jobs
    WHERE status = 'queued'
      AND run_at <= now()
      AND task = ANY($1::text[])
      AND ($2::text[] IS NULL OR queue = ANY($2::text[]))
    ORDER BY priority DESC, run_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE /*schema*/jobs AS j
SET status = 'running',
    attempts = j.attempts + 1,
    lease_id = nextval('/*schema*/lease_ids'),
    lease_owner = $5,
    lease_expires_at = now() + make_interval(secs => coalesce(
        (SELECT l.secs FROM unnest($1::text[], $4::float8[]) AS l(task, secs)
         WHERE l.task = j.task LIMIT 1), 30)),
    started_at = now()
FROM picked
WHERE j.id = picked.id
RETURNING j.*;
