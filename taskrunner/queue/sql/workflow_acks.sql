-- name: complete_many_in_workflows
-- complete_many (jobs_ack.sql) for a batch holding steps of workflows: the rows of the
-- workflows $4 are locked first, in id order, before any job row. The trigger of 0010
-- locks a step's workflow row after the step's own; two batches holding steps of two
-- workflows in opposite id orders would each hold one workflow and wait for the other
-- (a deadlock). Locked here first, in one order, they queue instead. A one-time filter
-- (the condition names no row) runs the lock before the scan reads a job. Keep the SET
-- list equal to complete_many's.
WITH locked AS (
    SELECT id FROM /*schema*/workflows WHERE id = ANY($4::bigint[]) ORDER BY id FOR UPDATE
)
UPDATE /*schema*/jobs AS j
SET status = 'succeeded',
    result = t.result,
    finished_at = now(),
    lease_id = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
FROM unnest($1::bigint[], $2::bigint[], $3::jsonb[]) AS t(id, lease_id, result)
WHERE (SELECT count(*) FROM locked) >= 0
  AND j.id = ANY($1::bigint[]) AND j.id = t.id AND j.lease_id = t.lease_id
RETURNING j.id, j.status::text;

-- name: fail_many_in_workflows
-- fail_many for a batch holding steps of workflows $5: see complete_many_in_workflows.
-- Keep the SET list equal to fail_many's.
WITH locked AS (
    SELECT id FROM /*schema*/workflows WHERE id = ANY($5::bigint[]) ORDER BY id FOR UPDATE
)
UPDATE /*schema*/jobs AS j
SET status = CASE
        WHEN j.cancel_requested THEN 'cancelled'
        WHEN t.retry_in IS NOT NULL AND j.attempts < j.max_attempts THEN 'queued'
        ELSE 'failed' END::/*schema*/job_status,
    run_at = CASE
        WHEN NOT j.cancel_requested AND t.retry_in IS NOT NULL AND j.attempts < j.max_attempts
        THEN now() + make_interval(secs => t.retry_in) ELSE j.run_at END,
    finished_at = CASE
        WHEN NOT j.cancel_requested AND t.retry_in IS NOT NULL AND j.attempts < j.max_attempts
        THEN NULL ELSE now() END,
    last_error = t.error,
    lease_id = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::float8[])
     AS t(id, lease_id, error, retry_in)
WHERE (SELECT count(*) FROM locked) >= 0
  AND j.id = ANY($1::bigint[]) AND j.id = t.id AND j.lease_id = t.lease_id
RETURNING j.id, j.status::text;

-- name: release_many_in_workflows
-- release_many for a batch holding steps of workflows $3 (a released step whose cancel
-- was asked ends cancelled, which moves its workflow): see complete_many_in_workflows.
-- Keep the SET list equal to release_many's.
WITH locked AS (
    SELECT id FROM /*schema*/workflows WHERE id = ANY($3::bigint[]) ORDER BY id FOR UPDATE
)
UPDATE /*schema*/jobs AS j
SET status = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'queued' END::/*schema*/job_status,
    attempts = CASE WHEN j.cancel_requested THEN j.attempts ELSE greatest(j.attempts - 1, 0) END,
    finished_at = CASE WHEN j.cancel_requested THEN now() END,
    run_at = CASE WHEN j.cancel_requested THEN j.run_at ELSE now() END,
    lease_id = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
FROM unnest($1::bigint[], $2::bigint[]) AS t(id, lease_id)
WHERE (SELECT count(*) FROM locked) >= 0
  AND j.id = ANY($1::bigint[]) AND j.id = t.id AND j.lease_id = t.lease_id
RETURNING j.id, j.status::text;
