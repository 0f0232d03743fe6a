-- name: rescue_expired
-- Running jobs whose lease ran out belong to a worker that died or hung. They run again
-- (the lost attempt stays counted) unless that was their last attempt, or a cancel was
-- asked. Batches of $1, SKIP LOCKED so several workers may rescue at once.
--
-- A rescued job keeps its run_at, so its place in the queue: it was due before anything
-- enqueued since, and it is claimed again at once instead of after the whole backlog
-- (with run_at = now() the jobs of a killed worker waited for the queue to drain, and
-- long ones then ran last, one after the other, on an otherwise idle fleet).
UPDATE /*schema*/jobs AS j
SET status = CASE
        WHEN j.cancel_requested THEN 'cancelled'
        WHEN j.attempts >= j.max_attempts THEN 'failed'
        ELSE 'queued' END::/*schema*/job_status,
    finished_at = CASE
        WHEN j.cancel_requested OR j.attempts >= j.max_attempts THEN now() END,
    last_error = 'lease expired: worker ' || coalesce(j.lease_owner, '?')
                 || ' stopped renewing it during attempt ' || j.attempts,
    lease_id = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
WHERE j.id IN (
    SELECT id FROM /*schema*/jobs
    WHERE status = 'running' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
RETURNING j.id, j.status::text, j.task, j.request_id;

-- name: delete_finished
-- Deletes up to $2 finished jobs (succeeded, failed, cancelled) that finished more than
-- $1 seconds ago, or when $1 is null more than the schema's key lifetime ago (its
-- settings); frees their idempotency keys. Returns how many. Not in age order: the
-- index of 0007 orders finished jobs within each status, and one walk per status is the
-- retention pruner's (jobs_cleanup.sql), which goes by each status's own rule. The caller
-- loops over batches, each its own short transaction; SKIP LOCKED passes over a row
-- something else holds (a retry of that job, a key being released), so pruning never
-- waits on, nor holds up, anything else.
WITH doomed AS (
    SELECT id FROM /*schema*/jobs
    WHERE status IN ('succeeded', 'failed', 'cancelled')
      AND finished_at < now() - make_interval(secs => coalesce(
          $1::float8, (SELECT s.idempotency_ttl FROM /*schema*/settings AS s)))
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM /*schema*/jobs WHERE id = ANY(ARRAY(SELECT id FROM doomed))
    RETURNING 1
)
SELECT count(*) FROM gone;
