-- name: claim_limited
-- Claims up to $3 jobs of one limited queue ($1) for the tasks $2 with their leases $4,
-- for owner $5: claim_limited() of migration 0008 holds the queue's lock while it counts
-- its free slots and its rate, so the limits hold across every worker. $6/$7: jobs and
-- leases of the caller's whose handlers ended, outcome not written yet (their slots are
-- free). The columns come back as claim_batch returns them (by position, JSON as bytes).
SELECT j.id, j.task, j.queue, j.status, convert_to(j.args::text, 'UTF8'),
       convert_to(j.kwargs::text, 'UTF8'), j.priority, j.run_at, j.attempts,
       j.max_attempts, j.idempotency_key, j.fingerprint, j.request_id, j.lease_id,
       j.lease_owner, j.lease_expires_at, j.cancel_requested, j.last_error,
       convert_to(j.result::text, 'UTF8'), j.created_at, j.started_at, j.finished_at,
       j.workflow_id,
       convert_to(j.trace_context::text, 'UTF8')
FROM /*schema*/claim_limited($1::text, $2::text[], $3::int, $4::float8[], $5::text,
                             $6::bigint[], $7::bigint[]) AS j;

-- name: limited_queues
-- The queues a worker must claim through claim_limited: a limit and not paused. Workers
-- read it every poll interval; it only tells them where to look (the claims decide).
SELECT name FROM /*schema*/queues
WHERE (paused OR concurrency IS NOT NULL OR rate_limit IS NOT NULL)  -- queues_restricted
  AND NOT paused AND (concurrency IS NOT NULL OR rate_limit IS NOT NULL)
ORDER BY name;

-- name: configure_queue
-- Sets a queue's limits ($2 concurrency, $3 starts per $4 seconds; NULL: none), keeping
-- its pause. The jobs of the queue running now hold slots from here on (merged with the
-- holders a concurrent claim may have just added). Wakes idle workers ($5): a raised
-- limit may let jobs start at once.
WITH config AS (
    INSERT INTO /*schema*/queues AS q (name, concurrency, rate_limit, rate_per)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (name) DO UPDATE
    SET concurrency = EXCLUDED.concurrency, rate_limit = EXCLUDED.rate_limit,
        rate_per = EXCLUDED.rate_per, updated_at = now()
    RETURNING q.name, q.paused, q.concurrency, q.rate_limit, q.rate_per
),
running AS (
    SELECT coalesce(array_agg(j.id ORDER BY j.id), '{}') AS ids,
           coalesce(array_agg(j.lease_id ORDER BY j.id), '{}') AS leases
    FROM /*schema*/jobs AS j
    WHERE j.lease_expires_at IS NOT NULL AND j.queue = $1 AND j.lease_id IS NOT NULL
),
seeded AS (
    INSERT INTO /*schema*/queue_state AS s (name, holder_jobs, holder_leases)
    SELECT $1, ids, leases FROM running
    ON CONFLICT (name) DO UPDATE
    SET (holder_jobs, holder_leases) = (
        SELECT coalesce(array_agg(h.job_id), '{}'), coalesce(array_agg(h.lease_id), '{}')
        FROM (SELECT DISTINCT job_id, lease_id
              FROM unnest(s.holder_jobs || EXCLUDED.holder_jobs,
                          s.holder_leases || EXCLUDED.holder_leases) AS u(job_id, lease_id)
             ) AS h)
    RETURNING 1
)
SELECT c.*, pg_notify($5, c.name) IS NULL AS notified
FROM config AS c;

-- name: pause_queue
-- Pauses a queue (creating its row if it has none); a row back when it changed.
INSERT INTO /*schema*/queues AS q (name, paused) VALUES ($1, true)
ON CONFLICT (name) DO UPDATE SET paused = true, updated_at = now() WHERE NOT q.paused
RETURNING q.name;

-- name: resume_queue
-- Resumes a paused queue and wakes idle workers ($2); a row back when it changed.
WITH changed AS (
    UPDATE /*schema*/queues SET paused = false, updated_at = now()
    WHERE name = $1 AND paused
    RETURNING name
)
SELECT name, pg_notify($2, name) IS NULL AS notified FROM changed;

-- name: list_queues
-- Every queue that has settings or jobs, with its settings and its job counts per status
-- (two parallel arrays). Reads the whole jobs table, like stats: for people, not loops.
WITH counts AS (
    SELECT queue, status::text AS status, count(*) AS n
    FROM /*schema*/jobs GROUP BY queue, status
),
names AS (
    SELECT name FROM /*schema*/queues UNION SELECT queue FROM counts
)
SELECT n.name, coalesce(q.paused, false) AS paused, q.concurrency, q.rate_limit, q.rate_per,
       coalesce((SELECT array_agg(c.status ORDER BY c.status) FROM counts AS c
                 WHERE c.queue = n.name), '{}') AS statuses,
       coalesce((SELECT array_agg(c.n ORDER BY c.status) FROM counts AS c
                 WHERE c.queue = n.name), '{}') AS counts
FROM names AS n LEFT JOIN /*schema*/queues AS q ON q.name = n.name
ORDER BY n.name;
