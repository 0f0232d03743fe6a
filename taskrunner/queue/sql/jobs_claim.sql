-- name: claim_batch
-- Claims up to $3 runnable jobs of the given tasks (and queues, when $2 is not null) in
-- priority order, then oldest run_at. SKIP LOCKED lets any number of claimers run side by
-- side without waiting on each other; the lease length is the task's own ($4, parallel to
-- $1). The picked ids are looked up as an array so that the plan is an index lookup per
-- id even when generic (a join on the CTE would be planned for an unknown LIMIT: a scan
-- of the whole primary key).
--
-- The plan walks the claim index in its order and stops after $3 rows, whatever the
-- statistics say. Tasks and queues are matched with array_position, not = ANY: the
-- planner has no estimate for it and assumes nearly every row matches, as it does for a
-- worker's own tasks. With = ANY on a table never analysed, it assumed 1 row in 200
-- matches, took a walk of the index for too long, and sorted every queued row instead
-- (45 ms per claim with 50,000 queued, against 0.2 ms).
--
-- Queues that are paused or limited (migration 0008) are left to claim_limited.
--
-- A job with no attempts left (handed back by an older version, or its max_attempts
-- lowered) is not run: it fails, says why, and is not returned.
--
-- Each claim draws a fresh lease id for fencing: 64 random bits, not a sequence, so that
-- no id is ever handed out twice. 0001's lease_ids sequence is no longer drawn from.
WITH picked AS (
    SELECT id
    FROM /*schema*/jobs
    WHERE status = 'queued'
      AND run_at <= now()
      AND array_position($1::text[], task) IS NOT NULL
      AND ($2::text[] IS NULL OR array_position($2::text[], queue) IS NOT NULL)
      -- Paused and limited queues (0008) are not claimed here: their names are read
      -- once per claim (an init plan over a table of a few rows). Written as IS NOT NULL
      -- of an expression, which the planner expects nearly every row to pass, for the
      -- same reason as array_position above: NOT = ANY is estimated from the queue
      -- column's statistics, and with one queue in them, as matching no row at all.
      AND nullif(queue = ANY(ARRAY(SELECT q.name FROM /*schema*/queues AS q
                                   WHERE q.paused OR q.concurrency IS NOT NULL
                                      OR q.rate_limit IS NOT NULL)), true) IS NOT NULL
    ORDER BY priority DESC, run_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE /*schema*/jobs AS j
SET status = CASE WHEN j.attempts < j.max_attempts THEN 'running' ELSE 'failed'
             END::/*schema*/job_status,
    attempts = CASE WHEN j.attempts < j.max_attempts THEN j.attempts + 1 ELSE j.attempts END,
    lease_id = CASE WHEN j.attempts < j.max_attempts
        THEN ('x' || left(replace(gen_random_uuid()::text, '-', ''), 16))::bit(64)::bigint END,
    lease_owner = CASE WHEN j.attempts < j.max_attempts THEN $5 END,
    lease_expires_at = CASE WHEN j.attempts < j.max_attempts
        THEN now() + make_interval(secs => coalesce(
            (SELECT l.secs FROM unnest($1::text[], $4::float8[]) AS l(task, secs)
             WHERE l.task = j.task LIMIT 1), 30)) END,
    started_at = CASE WHEN j.attempts < j.max_attempts THEN now() ELSE j.started_at END,
    finished_at = CASE WHEN j.attempts < j.max_attempts THEN j.finished_at ELSE now() END,
    last_error = CASE WHEN j.attempts < j.max_attempts THEN j.last_error
        ELSE 'not run: no attempts left (' || j.attempts || ' of max_attempts '
             || j.max_attempts || ' already used) when it was claimed' END
WHERE j.id = ANY(ARRAY(SELECT id FROM picked))
-- Every column, in the table's (and JobRow's) order, so that rows are built by position;
-- the JSON columns as their bytes, which the driver hands over without a Python call.
RETURNING j.id, j.task, j.queue, j.status, convert_to(j.args::text, 'UTF8'),
          convert_to(j.kwargs::text, 'UTF8'), j.priority, j.run_at, j.attempts,
          j.max_attempts, j.idempotency_key, j.fingerprint, j.request_id, j.lease_id,
          j.lease_owner, j.lease_expires_at, j.cancel_requested, j.last_error,
          convert_to(j.result::text, 'UTF8'), j.created_at, j.started_at, j.finished_at,
          j.workflow_id,
          convert_to(j.trace_context::text, 'UTF8');
