-- name: claim_batch
-- Claims up to $3 runnable jobs of the given tasks (and queues, when $2 is not null) in
-- priority order, then oldest run_at. SKIP LOCKED lets any number of claimers run side by
-- side without waiting on each other; the lease length is the task's own ($4, parallel to
-- $1). The picked ids are looked up as an array so that the plan is an index lookup per
-- id even when generic (a join on the CTE would be planned for an unknown LIMIT: a scan
-- of the whole primary key).
--
-- Each claim draws a fresh lease id for fencing: 64 random bits, not a sequence, so that
-- no id is ever handed out twice, even when a claim's commit is lost in a server crash
-- (the worker's claim connection commits asynchronously). 0001's lease_ids sequence is
-- no longer drawn from.
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
    lease_id = ('x' || left(replace(gen_random_uuid()::text, '-', ''), 16))::bit(64)::bigint,
    lease_owner = $5,
    lease_expires_at = now() + make_interval(secs => coalesce(
        (SELECT l.secs FROM unnest($1::text[], $4::float8[]) AS l(task, secs)
         WHERE l.task = j.task LIMIT 1), 30)),
    started_at = now()
WHERE j.id = ANY(ARRAY(SELECT id FROM picked))
-- Every column, in the table's (and JobRow's) order, so that rows are built by position;
-- the JSON columns as their bytes, which the driver hands over without a Python call.
RETURNING j.id, j.task, j.queue, j.status, convert_to(j.args::text, 'UTF8'),
          convert_to(j.kwargs::text, 'UTF8'), j.priority, j.run_at, j.attempts,
          j.max_attempts, j.idempotency_key, j.fingerprint, j.request_id, j.lease_id,
          j.lease_owner, j.lease_expires_at, j.cancel_requested, j.last_error,
          convert_to(j.result::text, 'UTF8'), j.created_at, j.started_at, j.finished_at;
