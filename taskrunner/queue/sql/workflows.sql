-- name: release_expired_workflow_key
-- Frees the idempotency key $1 of a workflow that finished more than the key lifetime
-- ago ($2 seconds, or the schema's when null), as finished jobs free theirs.
UPDATE /*schema*/workflows
SET idempotency_key = NULL
WHERE idempotency_key = $1
  AND finished_at <= now() - make_interval(secs => coalesce(
      $2::float8, (SELECT idempotency_ttl FROM /*schema*/settings)));

-- name: insert_workflow
-- The workflow's row, first: a taken key inserts nothing (the unique index waits for a
-- concurrent holder's transaction, so the holder is visible to the next statement).
INSERT INTO /*schema*/workflows (job_ids, shape, output, unfinished, idempotency_key,
                                 fingerprint, request_id)
VALUES ('{}', $1::text::jsonb, $2::text::jsonb, $3, $4, $5, $6)
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id, status, job_ids, created_at, finished_at, request_id, fingerprint,
          output::text AS output;

-- name: get_workflow_by_key
SELECT id, status, job_ids, created_at, finished_at, request_id, fingerprint,
       output::text AS output
FROM /*schema*/workflows WHERE idempotency_key = $1;

-- name: get_workflow
SELECT id, status, job_ids, created_at, finished_at, request_id, fingerprint,
       output::text AS output, shape::text AS shape
FROM /*schema*/workflows WHERE id = $1;

-- name: insert_workflow_steps
-- Every step of workflow $1 in one statement: $2 is a JSON array of steps (ord, task,
-- queue, args, kwargs, priority, max_attempts, the ords of its parents in input order,
-- what it receives from them), $3 the ords whose results make the workflow's result.
-- Ids are drawn in step order, so job_ids follow the order the steps were written. A
-- step without parents is queued at once; the others wait, counting their parents.
WITH input AS MATERIALIZED (
    SELECT nextval('/*schema*/jobs_id_seq') AS id, t.*
    FROM (SELECT * FROM jsonb_to_recordset($2::text::jsonb)
                     AS s(ord int, task text, queue text, args jsonb, kwargs jsonb,
                          priority int, max_attempts int, parents int[], input jsonb)
          ORDER BY ord) AS t
),
inserted AS (
    INSERT INTO /*schema*/jobs AS j (id, task, queue, status, args, kwargs, priority,
                                     max_attempts, request_id, workflow_id)
    SELECT i.id, i.task, i.queue,
           CASE WHEN cardinality(i.parents) = 0 THEN 'queued' ELSE 'waiting' END
               ::/*schema*/job_status,
           i.args, i.kwargs, i.priority, i.max_attempts, $5, $1
    FROM input AS i
    ORDER BY i.ord
    RETURNING j.id, j.queue, j.status, j.run_at, j.created_at
),
steps AS (
    INSERT INTO /*schema*/workflow_steps (job_id, workflow_id, remaining, input, released)
    SELECT i.id, $1, cardinality(i.parents), i.input, cardinality(i.parents) = 0
    FROM input AS i
    RETURNING 1
),
edges AS (
    INSERT INTO /*schema*/workflow_edges (workflow_id, parent_id, child_id, position)
    SELECT $1, p.id, i.id, x.n - 1
    FROM input AS i
    CROSS JOIN LATERAL unnest(i.parents) WITH ORDINALITY AS x(ord, n)
    JOIN input AS p ON p.ord = x.ord
    UNION ALL
    SELECT $1, p.id, NULL, x.n - 1
    FROM unnest($3::int[]) WITH ORDINALITY AS x(ord, n)
    JOIN input AS p ON p.ord = x.ord
    RETURNING 1
),
workflow AS (
    UPDATE /*schema*/workflows
    SET job_ids = (SELECT array_agg(id ORDER BY ord) FROM input)
    WHERE id = $1
    RETURNING job_ids
),
notified AS (
    SELECT pg_notify($4, q.queue) FROM (SELECT DISTINCT queue FROM inserted
                                        WHERE status = 'queued') AS q
)
SELECT i.ord, ins.id, ins.status::text AS status, ins.run_at, ins.created_at
FROM input AS i JOIN inserted AS ins ON ins.id = i.id
WHERE (SELECT count(*) FROM notified) >= 0
  AND (SELECT count(*) FROM steps) >= 0
  AND (SELECT count(*) FROM edges) >= 0
  AND (SELECT count(*) FROM workflow) >= 0
ORDER BY i.ord;

-- name: workflow_outputs
-- The results of the steps that make workflow $1's result, by position (copied when
-- each succeeded, so they outlive the steps' rows).
SELECT position, done, result::text AS result
FROM /*schema*/workflow_edges
WHERE workflow_id = $1 AND child_id IS NULL
ORDER BY position;

-- name: workflow_edges_of
-- The edges between the steps $1 (for retry: which parents each still waits for).
SELECT parent_id, child_id, position, done
FROM /*schema*/workflow_edges
WHERE child_id = ANY($1::bigint[])
ORDER BY child_id, position;

-- name: workflow_steps_of
-- Every step of workflow $1 with its status (the jobs table; archived steps are done).
SELECT id, status::text AS status
FROM /*schema*/jobs WHERE workflow_id = $1;

-- name: lock_workflow
-- Serializes a retry with the acks of the workflow's steps (the trigger of 0010 takes
-- the same row lock first).
SELECT id FROM /*schema*/workflows WHERE id = $1 FOR UPDATE;

-- name: cancel_workflow
-- Cancels every step of workflow $1 that has not started (waiting, queued, paused) and
-- asks the workers of its running steps to stop them (cancel channel $2); the workflow
-- ends cancelled once they stopped. Returns one row per step it changed.
WITH workflow AS (
    UPDATE /*schema*/workflows SET cancel_requested = true
    WHERE id = $1 AND status = 'running'
    RETURNING id
),
changed AS (
    UPDATE /*schema*/jobs
    SET status = CASE WHEN status = 'running' THEN status ELSE 'cancelled' END,
        cancel_requested = (status = 'running'),
        finished_at = CASE WHEN status = 'running' THEN NULL ELSE now() END,
        last_error = CASE WHEN status = 'running' THEN last_error
                          ELSE 'cancelled with its workflow' END
    WHERE workflow_id = $1
      AND workflow_id = ANY(ARRAY(SELECT id FROM workflow))
      AND (status IN ('queued', 'paused', 'waiting')
           OR (status = 'running' AND NOT cancel_requested))
    RETURNING id, status
)
SELECT id, status::text,
       CASE WHEN status = 'running' THEN pg_notify($2, id::text) END IS NULL AS notified
FROM changed;

-- name: retry_workflow_steps
-- Steps $2 of workflow $1 (failed or cancelled) start again from their first attempt:
-- queued when none of their parents is still to succeed ($3: how many are), else
-- waiting, counting them again. A step queued now whose input was never given (it was
-- cancelled while it waited) gets it now. The workflow runs again (the trigger of 0010
-- counts the steps back in) and a cancel asked of it is forgotten. Wakes workers ($4).
WITH targets AS (
    SELECT t.id, t.remaining, s.input, s.released
    FROM unnest($2::bigint[], $3::int[]) AS t(id, remaining)
    JOIN /*schema*/workflow_steps AS s ON s.job_id = t.id
),
steps AS (
    UPDATE /*schema*/workflow_steps AS s
    SET remaining = t.remaining, released = s.released OR t.remaining = 0
    FROM targets AS t
    WHERE s.job_id = t.id
    RETURNING 1
),
workflow AS (
    UPDATE /*schema*/workflows SET cancel_requested = false WHERE id = $1 RETURNING 1
),
changed AS (
    UPDATE /*schema*/jobs AS j
    SET status = CASE WHEN t.remaining = 0 THEN 'queued' ELSE 'waiting' END
                     ::/*schema*/job_status,
        attempts = 0, run_at = now(), cancel_requested = false,
        started_at = NULL, finished_at = NULL, result = NULL,
        last_error = CASE WHEN t.remaining = 0 THEN j.last_error END,
        args = CASE WHEN t.remaining = 0 AND NOT t.released
                    THEN /*schema*/workflow_input(j.id, t.input) || j.args ELSE j.args END
    FROM targets AS t
    WHERE j.id = t.id AND j.workflow_id = $1 AND j.status IN ('failed', 'cancelled')
    RETURNING j.id, j.queue, j.status
),
notified AS (
    SELECT pg_notify($4, q.queue) FROM (SELECT DISTINCT queue FROM changed
                                        WHERE status = 'queued') AS q
)
SELECT c.id, c.status::text AS status FROM changed AS c
WHERE (SELECT count(*) FROM notified) >= 0
  AND (SELECT count(*) FROM steps) >= 0
  AND (SELECT count(*) FROM workflow) >= 0;
