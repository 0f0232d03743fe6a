-- name: cleanup_clock
-- The database's now, read once when a cleanup starts: every batch of it measures ages
-- from this instant, so jobs that finish while it runs are never chased.
SELECT now() FROM /*schema*/settings;

-- name: remove_finished
-- Deletes up to $3 jobs of the final status $1 that finished at or before $2 and not
-- before $4 (the cursor: the latest finished_at of the batch before, null at first),
-- oldest first; frees their idempotency keys. Returns how many, and the new cursor.
-- Each call is one short transaction; SKIP LOCKED passes over a row something else
-- holds, so a cleanup never waits on, nor holds up, a claim or an ack.
WITH doomed AS (
    SELECT id, finished_at FROM /*schema*/jobs
    WHERE status = $1::text::/*schema*/job_status
      AND finished_at <= $2::timestamptz
      AND finished_at >= coalesce($4::timestamptz, '-infinity')
    ORDER BY finished_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM /*schema*/jobs WHERE id = ANY(ARRAY(SELECT id FROM doomed)) RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS count, (SELECT max(finished_at) FROM doomed) AS cursor;

-- name: archive_finished
-- Moves up to $3 jobs of the final status $1 (finished at or before $2, not before the
-- cursor $4) to archived_jobs, oldest first, in one statement: the row leaves jobs (its
-- key is free again) and the same row, every column kept, enters the archive.
WITH doomed AS (
    SELECT id, finished_at FROM /*schema*/jobs
    WHERE status = $1::text::/*schema*/job_status
      AND finished_at <= $2::timestamptz
      AND finished_at >= coalesce($4::timestamptz, '-infinity')
    ORDER BY finished_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
),
moved AS (
    DELETE FROM /*schema*/jobs WHERE id = ANY(ARRAY(SELECT id FROM doomed))
    RETURNING id, task, queue, status, args, kwargs, priority, run_at, attempts,
              max_attempts, idempotency_key, fingerprint, request_id, lease_id,
              lease_owner, lease_expires_at, cancel_requested, last_error, result,
              created_at, started_at, finished_at, workflow_id, trace_context
),
archived AS (
    INSERT INTO /*schema*/archived_jobs (
        id, task, queue, status, args, kwargs, priority, run_at, attempts, max_attempts,
        idempotency_key, fingerprint, request_id, lease_id, lease_owner, lease_expires_at,
        cancel_requested, last_error, result, created_at, started_at, finished_at,
        workflow_id, trace_context)
    SELECT * FROM moved
    RETURNING 1
)
SELECT (SELECT count(*) FROM archived) AS count, (SELECT max(finished_at) FROM doomed) AS cursor;

-- name: rerun_finished
-- Puts up to $3 jobs of the final status $1 (finished at or before $2, not before the
-- cursor $4) back to queued from their first attempt, runnable now, like retry; wakes
-- idle workers of their queues on the jobs channel ($5). Workflow steps are left to
-- retry_workflow, which puts their dependants back too.
WITH doomed AS (
    SELECT id, finished_at FROM /*schema*/jobs
    WHERE status = $1::text::/*schema*/job_status
      AND workflow_id IS NULL
      AND finished_at <= $2::timestamptz
      AND finished_at >= coalesce($4::timestamptz, '-infinity')
    ORDER BY finished_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
),
changed AS (
    UPDATE /*schema*/jobs
    SET status = 'queued', attempts = 0, run_at = now(), cancel_requested = false,
        started_at = NULL, finished_at = NULL, result = NULL
    WHERE id = ANY(ARRAY(SELECT id FROM doomed))
    RETURNING queue
),
notified AS (
    SELECT pg_notify($5, q.queue) FROM (SELECT DISTINCT queue FROM changed) AS q
)
SELECT (SELECT count(*) FROM changed) AS count, (SELECT max(finished_at) FROM doomed) AS cursor,
       (SELECT count(*) FROM notified) AS notified;

-- name: remove_waiting
-- Deletes up to $3 jobs of status $1 (queued or paused) created at or before $2 with ids
-- above the cursor $4, in id order (the primary key serves the walk, which never goes
-- back). Claims skip locked rows as this does, so neither waits for the other. Steps of
-- workflows are left alone (their dependants would wait for ever): cancel_workflow.
WITH doomed AS (
    SELECT id FROM /*schema*/jobs
    WHERE status = $1::text::/*schema*/job_status
      AND status IN ('queued', 'paused')
      AND workflow_id IS NULL
      AND created_at <= $2::timestamptz
      AND id > $4::bigint
    ORDER BY id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM /*schema*/jobs WHERE id = ANY(ARRAY(SELECT id FROM doomed)) RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS count, (SELECT max(id) FROM doomed) AS cursor;

-- name: rerun_unfinished
-- Up to $3 paused jobs (created at or before $2), or running jobs whose lease has run out
-- (their worker is gone; started at or before $2), with ids above the cursor $4, go back
-- to queued from their first attempt, runnable now; wakes idle workers ($5). A running
-- job whose worker still renews its lease is never touched: a second copy would run
-- beside it.
WITH doomed AS (
    SELECT id FROM /*schema*/jobs
    WHERE status = $1::text::/*schema*/job_status
      AND (status = 'paused' AND created_at <= $2::timestamptz
           OR status = 'running' AND lease_expires_at < now()
              AND started_at <= $2::timestamptz)
      AND id > $4::bigint
    ORDER BY id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
),
changed AS (
    UPDATE /*schema*/jobs
    SET status = 'queued', attempts = 0, run_at = now(), cancel_requested = false,
        started_at = NULL, finished_at = NULL, result = NULL,
        lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL
    WHERE id = ANY(ARRAY(SELECT id FROM doomed))
    RETURNING queue
),
notified AS (
    SELECT pg_notify($5, q.queue) FROM (SELECT DISTINCT queue FROM changed) AS q
)
SELECT (SELECT count(*) FROM changed) AS count, (SELECT max(id) FROM doomed) AS cursor,
       (SELECT count(*) FROM notified) AS notified;

-- name: remove_archived
-- Deletes up to $2 archived jobs that finished at or before $1 and not before the cursor
-- $3, oldest first. Nothing but a cleanup writes the archive, so nothing waits here.
WITH doomed AS (
    SELECT id, finished_at FROM /*schema*/archived_jobs
    WHERE finished_at <= $1::timestamptz
      AND finished_at >= coalesce($3::timestamptz, '-infinity')
    ORDER BY finished_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM /*schema*/archived_jobs WHERE id = ANY(ARRAY(SELECT id FROM doomed))
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS count, (SELECT max(finished_at) FROM doomed) AS cursor;

-- name: count_for_cleanup
-- For a dry run: how many jobs of status $1 a cleanup with the cutoff $2 would act on.
-- The age is measured from created_at for queued and paused jobs, from started_at for
-- running ones (of which only those with an expired lease count, when $3), from
-- finished_at otherwise.
SELECT count(*) FROM /*schema*/jobs
WHERE status = $1::text::/*schema*/job_status
  AND CASE WHEN status IN ('queued', 'paused') THEN created_at
           WHEN status = 'running' THEN started_at
           ELSE finished_at END <= $2::timestamptz
  AND (NOT $3::boolean OR lease_expires_at < now());

-- name: count_archived_for_cleanup
-- For a dry run: how many archived jobs finished at or before $1.
SELECT count(*) FROM /*schema*/archived_jobs WHERE finished_at <= $1::timestamptz;

-- name: prune_by_retention
-- Deletes up to $2 jobs of the final status $1 past the schema's retention for it
-- (0007's settings; NULL there means the key lifetime, 'infinity' keeps them), oldest
-- first, keeping a keyed job until its key expired too. One short transaction, SKIP
-- LOCKED; the caller loops over batches and statuses.
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
    SELECT id FROM /*schema*/jobs
    WHERE status = $1::text::/*schema*/job_status
      AND finished_at < (SELECT finished_before FROM cutoff)
      AND (idempotency_key IS NULL OR finished_at < (SELECT key_expired_before FROM cutoff))
    ORDER BY finished_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM /*schema*/jobs WHERE id = ANY(ARRAY(SELECT id FROM doomed)) RETURNING 1
)
SELECT count(*) FROM gone;

-- name: get_retention
-- The schema's retention per final status, in seconds (NULL: the key lifetime;
-- 'infinity': until a cleanup).
SELECT retain_succeeded, retain_failed, retain_cancelled FROM /*schema*/settings;

-- name: set_retention
-- Sets the schema's retention; returns the previous values when they changed, no row
-- when they were already these.
WITH previous AS (
    SELECT retain_succeeded, retain_failed, retain_cancelled FROM /*schema*/settings
)
UPDATE /*schema*/settings AS s
SET retain_succeeded = $1::float8, retain_failed = $2::float8,
    retain_cancelled = $3::float8, updated_at = now()
FROM previous
WHERE (s.retain_succeeded, s.retain_failed, s.retain_cancelled)
      IS DISTINCT FROM ($1::float8, $2::float8, $3::float8)
RETURNING previous.retain_succeeded, previous.retain_failed, previous.retain_cancelled;

-- name: get_archived_jobs
-- Archived jobs by id: get_job reads here when the jobs table has no such id.
SELECT * FROM /*schema*/archived_jobs WHERE id = ANY($1::bigint[]);

-- name: list_archived_jobs
-- list_jobs(archived=True): the archive with list_jobs' filters, newest first.
SELECT * FROM /*schema*/archived_jobs
WHERE ($1::text IS NULL OR status::text = $1)
  AND ($2::text IS NULL OR queue = $2)
  AND ($3::text IS NULL OR task = $3)
  AND ($4::text IS NULL OR request_id = $4)
  AND ($5::bigint IS NULL OR id < $5)
ORDER BY id DESC
LIMIT $6;
