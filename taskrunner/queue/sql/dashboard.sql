-- name: overview
-- What the dashboard's overview shows, in one snapshot, reading only rows that indexes
-- find (it must answer in milliseconds over millions of finished jobs, so it never
-- counts the whole table). One row per (kind, queue, status):
--   'live'     queued (jobs_claim_order), running (jobs_lease_expiry: a lease exactly
--              while running) and paused (jobs_paused, 0012) jobs per queue, with the
--              wait of the oldest due queued job;
--   'recent'   jobs that finished in the last $1 seconds per queue and final status
--              (jobs_finished_by_status, a range of finished_at per status);
--   'total'    finished jobs per final status, all queues, counted up to $2 (an
--              index-only walk of jobs_finished_by_status stops there);
--   'settings' every queue with settings, paused or not (count 1 when paused).
SELECT 'live' AS kind, queue, status::text AS status, count(*) AS count,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::float8
           AS oldest_queued_age
FROM /*schema*/jobs WHERE status = 'queued'
GROUP BY queue, status
UNION ALL
SELECT 'live', queue, 'running', count(*), NULL
FROM /*schema*/jobs WHERE lease_expires_at IS NOT NULL
GROUP BY queue
UNION ALL
SELECT 'live', queue, 'paused', count(*), NULL
FROM /*schema*/jobs WHERE status = 'paused'
GROUP BY queue
UNION ALL
SELECT 'recent', queue, status::text, count(*), NULL
FROM /*schema*/jobs
WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at IS NOT NULL
  AND finished_at > now() - make_interval(secs => $1::float8)
GROUP BY queue, status
UNION ALL
SELECT 'total', NULL, s.status::text,
       (SELECT count(*) FROM (SELECT 1 FROM /*schema*/jobs AS j
                              WHERE j.status = s.status AND j.finished_at IS NOT NULL
                              ORDER BY j.status, j.finished_at  -- the index's order: no
                              LIMIT $2::bigint) AS capped),    -- plan reads the table
       NULL
FROM unnest('{succeeded,failed,cancelled}'::/*schema*/job_status[]) AS s(status)
UNION ALL
SELECT 'settings', name, NULL, paused::int, NULL FROM /*schema*/queues;

-- name: find_jobs_by_key
-- Jobs with this idempotency key, newest first (any task: the key index leads with the
-- task, so this walks that index, which holds keyed jobs only).
SELECT * FROM /*schema*/jobs WHERE idempotency_key = $1 ORDER BY id DESC LIMIT $2;

-- name: retry_matching
-- One batch of a bulk retry: up to $5 failed or cancelled jobs that match the filters
-- (status $1, queue $2, task $3, request id $4; NULL: any) run again from their first
-- attempt, now. Rows another transaction holds are skipped, not waited for. Wakes the
-- workers of each queue touched ($6). Returns how many changed. Workflow steps are left
-- out: a step is retried with its workflow (retry_workflow), which also requeues the
-- steps that were cancelled because of it.
WITH picked AS (
    SELECT id FROM /*schema*/jobs
    WHERE status IN ('failed', 'cancelled') AND finished_at IS NOT NULL
      AND workflow_id IS NULL
      AND ($1::text IS NULL OR status::text = $1)
      AND ($2::text IS NULL OR queue = $2)
      AND ($3::text IS NULL OR task = $3)
      AND ($4::text IS NULL OR request_id = $4)
    ORDER BY id
    LIMIT $5
    FOR UPDATE SKIP LOCKED
),
changed AS (
    UPDATE /*schema*/jobs AS j
    SET status = 'queued', attempts = 0, run_at = now(), cancel_requested = false,
        started_at = NULL, finished_at = NULL, result = NULL
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.id, j.queue
)
SELECT (SELECT count(*) FROM changed)::int AS changed,
       (SELECT count(*) FROM (SELECT DISTINCT queue FROM changed) AS q
        WHERE pg_notify($6, q.queue) IS NULL)::int AS notified;

-- name: cancel_matching
-- One batch of a bulk cancel: up to $5 queued, paused, waiting or running jobs that match
-- the filters (as retry_matching). Queued, paused and waiting ones are cancelled at once
-- (a workflow step's dependants with it, by the trigger of migration 0010); running ones
-- are marked and their workers told on the cancel channel ($6), as `cancel` does.
WITH picked AS (
    SELECT id FROM /*schema*/jobs
    WHERE (status IN ('queued', 'paused', 'waiting')
           OR (status = 'running' AND NOT cancel_requested))
      AND ($1::text IS NULL OR status::text = $1)
      AND ($2::text IS NULL OR queue = $2)
      AND ($3::text IS NULL OR task = $3)
      AND ($4::text IS NULL OR request_id = $4)
    ORDER BY id
    LIMIT $5
    FOR UPDATE SKIP LOCKED
),
changed AS (
    UPDATE /*schema*/jobs AS j
    SET status = CASE WHEN j.status = 'running' THEN j.status ELSE 'cancelled' END,
        cancel_requested = (j.status = 'running'),
        finished_at = CASE WHEN j.status = 'running' THEN NULL ELSE now() END
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.id, j.status
)
SELECT count(*)::int AS changed,
       coalesce(sum(CASE WHEN status = 'running'
                         THEN (pg_notify($6, id::text) IS NULL)::int ELSE 0 END), 0)::int
           AS notified
FROM changed;

-- name: list_workflows
-- Newest first, optionally of one status ($1), ids below $2 (the cursor: the last id of
-- the page before); the primary key serves the order.
SELECT id, status, job_ids, created_at, finished_at, request_id, NULL::text AS output,
       NULL::text AS shape
FROM /*schema*/workflows
WHERE ($1::text IS NULL OR status = $1) AND ($2::bigint IS NULL OR id < $2)
ORDER BY id DESC
LIMIT $3;
