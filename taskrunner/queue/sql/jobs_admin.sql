-- name: get_jobs
SELECT * FROM /*schema*/jobs WHERE id = ANY($1::bigint[]);

-- name: list_jobs
-- Newest first, each filter optional: status, queue, task, request id, and ids below $5
-- (the cursor: the last id of the page before). The primary key serves the order.
SELECT * FROM /*schema*/jobs
WHERE ($1::text IS NULL OR status::text = $1)
  AND ($2::text IS NULL OR queue = $2)
  AND ($3::text IS NULL OR task = $3)
  AND ($4::text IS NULL OR request_id = $4)
  AND ($5::bigint IS NULL OR id < $5)
ORDER BY id DESC
LIMIT $6;

-- name: cancel
-- Queued, paused or waiting (a workflow step): cancelled at once (a step's dependants
-- with it, by the trigger of migration 0010). Running: marked, and its worker is told on
-- the cancel channel ($2); the worker stops the handler and the job ends cancelled.
-- A step's workflow row is locked before the step's (a one-time filter runs first), in
-- the order every change of a workflow takes (see sql/workflow_acks.sql): locked after
-- it, an ack holding the workflow and releasing this step would wait on us as we wait
-- on it.
WITH locked AS (
    SELECT w.id FROM /*schema*/workflows AS w
    WHERE w.id = (SELECT workflow_id FROM /*schema*/jobs WHERE id = $1)
    FOR UPDATE
),
changed AS (
    UPDATE /*schema*/jobs
    SET status = CASE WHEN status = 'running' THEN status ELSE 'cancelled' END,
        cancel_requested = (status = 'running'),
        finished_at = CASE WHEN status = 'running' THEN NULL ELSE now() END
    WHERE (SELECT count(*) FROM locked) >= 0
      AND id = $1
      AND (status IN ('queued', 'paused', 'waiting')
           OR (status = 'running' AND NOT cancel_requested))
    RETURNING id, status
)
SELECT id, status::text,
       CASE WHEN status = 'running' THEN pg_notify($2, id::text) END IS NULL AS notified
FROM changed;

-- name: pause
UPDATE /*schema*/jobs SET status = 'paused'
WHERE id = $1 AND status = 'queued'
RETURNING id;

-- name: resume
-- Back to queued; wakes idle workers of the job's queue on the jobs channel ($2).
WITH changed AS (
    UPDATE /*schema*/jobs SET status = 'queued'
    WHERE id = $1 AND status = 'paused'
    RETURNING id, queue, run_at
)
SELECT id, CASE WHEN run_at <= now() THEN pg_notify($2, queue) END IS NULL AS notified
FROM changed;

-- name: retry
-- A failed or cancelled job runs again from its first attempt, now. Not a workflow
-- step: those are retried with their dependants (retry_workflow_steps, workflows.sql).
WITH changed AS (
    UPDATE /*schema*/jobs
    SET status = 'queued', attempts = 0, run_at = now(), cancel_requested = false,
        started_at = NULL, finished_at = NULL, result = NULL
    WHERE id = $1 AND status IN ('failed', 'cancelled') AND workflow_id IS NULL
    RETURNING id, queue
)
SELECT id, pg_notify($2, queue) IS NULL AS notified FROM changed;

-- name: stats
-- Counts per queue and status; for queued jobs also how long the oldest due one waited.
SELECT queue, status::text AS status, count(*) AS count,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::float8
           AS oldest_queued_age
FROM /*schema*/jobs
GROUP BY queue, status
ORDER BY queue, status;

-- name: count_queued
SELECT count(*) FROM /*schema*/jobs
WHERE status = 'queued' AND ($1::text[] IS NULL OR queue = ANY($1::text[]));

-- name: runnable_exists
-- Whether any of these tasks has a job that could be claimed now (a paused queue's jobs
-- cannot; a limited queue's may, once a slot frees).
SELECT EXISTS (
    SELECT 1 FROM /*schema*/jobs
    WHERE status = 'queued' AND run_at <= now() AND task = ANY($1::text[])
      AND ($2::text[] IS NULL OR queue = ANY($2::text[]))
      AND nullif(queue = ANY(ARRAY(SELECT q.name FROM /*schema*/queues AS q WHERE q.paused)),
                 true) IS NOT NULL  -- estimated as nearly always true (see claim_batch)
);

-- name: next_run_at
-- When the earliest queued job of these tasks becomes due (for a precise idle sleep).
SELECT min(run_at) FROM /*schema*/jobs
WHERE status = 'queued' AND task = ANY($1::text[])
  AND ($2::text[] IS NULL OR queue = ANY($2::text[]));

-- name: clear
-- Deletes every job (of the given queues, when $1 is not null). Returns how many.
WITH gone AS (
    DELETE FROM /*schema*/jobs WHERE $1::text[] IS NULL OR queue = ANY($1::text[])
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: unknown_queued_tasks
-- Tasks of due queued jobs that are not among $1 (of queues $2, all when null), counted
-- among the first $3 jobs in claim order. The claim index serves it, so it stays cheap
-- under any backlog; jobs that no worker claims stay at the head of that order.
SELECT task, count(*)::int AS jobs
FROM (
    SELECT task FROM /*schema*/jobs
    WHERE status = 'queued' AND run_at <= now()
      AND ($2::text[] IS NULL OR queue = ANY($2::text[]))
    ORDER BY priority DESC, run_at, id
    LIMIT $3
) AS head
WHERE NOT (task = ANY($1::text[]))
GROUP BY task
ORDER BY task;

-- name: ping
-- An answer proves the connection alive (a LISTEN connection is otherwise silent, and a
-- half-open one would never say it is dead). It names the schema, as every statement does,
-- through a type: no table is read.
SELECT NULL::/*schema*/job_status;
