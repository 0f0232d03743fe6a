-- name: complete_many
-- Finishes running jobs whose lease the caller still holds. What really happened wins: a
-- job whose handler returned succeeded, with its result, even if a cancel was asked
-- meanwhile (too late to stop it). Rows that do not match lost their lease: the caller
-- logs them.
--
-- Like every statement on a list of leases, it finds the rows by their ids as an array,
-- so that the primary key is the access path whatever the statistics say, and it names
-- no status: a lease id is set exactly while the job runs (a constraint since 0002), and
-- a status condition would only let statistics taken while nothing ran estimate one
-- matching row, and plan a join that grows with the square of the batch.
UPDATE /*schema*/jobs AS j
SET status = 'succeeded',
    result = t.result,
    finished_at = now(),
    lease_id = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
FROM unnest($1::bigint[], $2::bigint[], $3::jsonb[]) AS t(id, lease_id, result)
WHERE j.id = ANY($1::bigint[]) AND j.id = t.id AND j.lease_id = t.lease_id
RETURNING j.id, j.status::text;

-- name: fail_many
-- Ends attempts that failed. With a retry delay and attempts left, the job is queued again
-- for now() + delay; otherwise it fails for good (or ends cancelled if that was asked).
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
WHERE j.id = ANY($1::bigint[]) AND j.id = t.id AND j.lease_id = t.lease_id
RETURNING j.id, j.status::text;

-- name: release_many
-- Hands running jobs back to the queue (a worker shutting down). The attempt their claim
-- counted is taken back: a job handed back keeps the attempts it had, however often its
-- workers stop. A job whose cancel was asked ends cancelled instead, its attempt counted.
UPDATE /*schema*/jobs AS j
SET status = CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'queued' END::/*schema*/job_status,
    attempts = CASE WHEN j.cancel_requested THEN j.attempts ELSE greatest(j.attempts - 1, 0) END,
    finished_at = CASE WHEN j.cancel_requested THEN now() END,
    run_at = CASE WHEN j.cancel_requested THEN j.run_at ELSE now() END,
    lease_id = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL
FROM unnest($1::bigint[], $2::bigint[]) AS t(id, lease_id)
WHERE j.id = ANY($1::bigint[]) AND j.id = t.id AND j.lease_id = t.lease_id
RETURNING j.id, j.status::text;
