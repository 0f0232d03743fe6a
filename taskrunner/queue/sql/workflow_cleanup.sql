-- name: prune_workflows
-- Deletes up to $2 workflows that ended with status $1 longer ago than the schema's
-- retention for it (read as prune_by_retention reads it; a keyed one is kept until its
-- key expired too), none of whose steps is left in jobs (each was pruned, removed or
-- archived: a step still there may be retried, and its workflow with it). Their steps'
-- counts and edges, with the results copied there, go with them (ON DELETE CASCADE). A
-- running workflow is never touched: its edges hold the results its later steps need.
-- One short transaction, SKIP LOCKED; the caller loops over batches and statuses.
WITH rule AS (
    SELECT CASE $1::text WHEN 'succeeded' THEN coalesce(retain_succeeded, idempotency_ttl)
                         WHEN 'failed' THEN coalesce(retain_failed, idempotency_ttl)
                         WHEN 'cancelled' THEN coalesce(retain_cancelled, idempotency_ttl)
           END AS keep_for,
           idempotency_ttl AS key_ttl
    FROM /*schema*/settings
),
cutoff AS (
    SELECT CASE WHEN keep_for < 'infinity' THEN now() - make_interval(secs => keep_for)
                ELSE '-infinity'::timestamptz END AS finished_before,
           now() - make_interval(secs => key_ttl) AS key_expired_before
    FROM rule
),
doomed AS (
    SELECT w.id FROM /*schema*/workflows AS w
    WHERE w.status = $1::text
      AND w.finished_at < (SELECT finished_before FROM cutoff)
      AND (w.idempotency_key IS NULL
           OR w.finished_at < (SELECT key_expired_before FROM cutoff))
      AND NOT EXISTS (SELECT 1 FROM /*schema*/jobs AS j WHERE j.workflow_id = w.id)
    ORDER BY w.finished_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM /*schema*/workflows WHERE id = ANY(ARRAY(SELECT id FROM doomed)) RETURNING 1
)
SELECT count(*) FROM gone;

-- name: remove_workflows
-- cleanup(): deletes up to $3 workflows that ended with status $1 at or before $2 and
-- not before the cursor $4, none of whose steps is left in jobs (see prune_workflows),
-- oldest first; frees their idempotency keys. Returns how many, and the new cursor.
-- A workflow is kept for the retention of its status all the same (its result stays
-- readable that long, whatever a cleanup did to its steps), unless that retention is
-- "until a cleanup acts" ('infinity'), which this cleanup is.
WITH rule AS (
    SELECT CASE $1::text WHEN 'succeeded' THEN coalesce(retain_succeeded, idempotency_ttl)
                         WHEN 'failed' THEN coalesce(retain_failed, idempotency_ttl)
                         WHEN 'cancelled' THEN coalesce(retain_cancelled, idempotency_ttl)
           END AS keep_for
    FROM /*schema*/settings
),
cutoff AS (
    SELECT CASE WHEN keep_for < 'infinity' THEN now() - make_interval(secs => keep_for)
                ELSE 'infinity'::timestamptz END AS finished_before
    FROM rule
),
doomed AS (
    SELECT w.id, w.finished_at FROM /*schema*/workflows AS w
    WHERE w.status = $1::text
      AND w.finished_at <= $2::timestamptz
      AND w.finished_at < (SELECT finished_before FROM cutoff)
      AND w.finished_at >= coalesce($4::timestamptz, '-infinity')
      AND NOT EXISTS (SELECT 1 FROM /*schema*/jobs AS j WHERE j.workflow_id = w.id)
    ORDER BY w.finished_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM /*schema*/workflows WHERE id = ANY(ARRAY(SELECT id FROM doomed)) RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS count, (SELECT max(finished_at) FROM doomed) AS cursor;
