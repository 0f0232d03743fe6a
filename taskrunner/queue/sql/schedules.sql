-- name: schedule_upsert
-- Creates a schedule or replaces the one of that name. A replaced schedule keeps its
-- next tick (so ticks missed meanwhile follow its missed policy) unless its ticks
-- changed (cron, every or time zone), and keeps its paused state, so a worker that
-- rewrites its declared schedules at start never resumes one an operator paused. The
-- version moves only when something changed. No row comes back when a concurrent
-- insert of the same name committed after this statement's snapshot: ask again.
WITH written AS (
    INSERT INTO /*schema*/schedules AS s (name, task, cron, every, timezone, args, kwargs,
                                          queue, priority, max_attempts, missed, next_run_at)
    VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7::text::jsonb, $8, $9, $10, $11, $12)
    ON CONFLICT (name) DO UPDATE SET
        task = EXCLUDED.task, cron = EXCLUDED.cron, every = EXCLUDED.every,
        timezone = EXCLUDED.timezone, args = EXCLUDED.args, kwargs = EXCLUDED.kwargs,
        queue = EXCLUDED.queue, priority = EXCLUDED.priority,
        max_attempts = EXCLUDED.max_attempts, missed = EXCLUDED.missed,
        next_run_at = CASE
            WHEN (s.cron, s.every, s.timezone)
                 IS NOT DISTINCT FROM (EXCLUDED.cron, EXCLUDED.every, EXCLUDED.timezone)
            THEN s.next_run_at ELSE EXCLUDED.next_run_at END,
        version = s.version + 1,
        updated_at = now()
    WHERE (s.task, s.cron, s.every, s.timezone, s.args, s.kwargs, s.queue, s.priority,
           s.max_attempts, s.missed)
          IS DISTINCT FROM (EXCLUDED.task, EXCLUDED.cron, EXCLUDED.every, EXCLUDED.timezone,
                            EXCLUDED.args, EXCLUDED.kwargs, EXCLUDED.queue, EXCLUDED.priority,
                            EXCLUDED.max_attempts, EXCLUDED.missed)
    RETURNING s.*
)
SELECT * FROM written
UNION ALL
SELECT * FROM /*schema*/schedules WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM written);

-- name: schedule_get
SELECT * FROM /*schema*/schedules WHERE name = $1;

-- name: schedule_list
SELECT * FROM /*schema*/schedules ORDER BY name;

-- name: schedules_due
-- The workers' poll: schedules whose next tick is due, or comes within $1 seconds (the
-- poller sleeps until then), soonest first, with the database's clock, which every
-- worker shares.
SELECT now() AS db_now, s.*
FROM /*schema*/schedules AS s
WHERE NOT s.paused AND s.next_run_at <= now() + make_interval(secs => $1::float8)
ORDER BY s.next_run_at
LIMIT $2;

-- name: schedule_advance
-- Enqueues the ticks $6 of a schedule and moves its next tick to $4, if and only if its
-- next tick is still $3 and its version $2 (the compare-and-set: of workers racing for
-- the same ticks one matches, the others change nothing). The jobs take the stored
-- definition's task, arguments and options, and wake workers of their queue.
WITH advanced AS (
    UPDATE /*schema*/schedules AS s
    SET next_run_at = $4,
        last_run_at = coalesce((SELECT max(t) FROM unnest($6::timestamptz[]) AS t), s.last_run_at)
    WHERE s.name = $1 AND s.version = $2 AND s.next_run_at = $3 AND NOT s.paused
    RETURNING s.task, s.queue, s.args, s.kwargs, s.priority, s.max_attempts
),
inserted AS (
    INSERT INTO /*schema*/jobs (task, queue, args, kwargs, priority, run_at, max_attempts,
                                request_id)
    SELECT a.task, a.queue, a.args, a.kwargs, a.priority, t.tick, a.max_attempts,
           replace(gen_random_uuid()::text, '-', '')
    FROM advanced AS a, unnest($6::timestamptz[]) WITH ORDINALITY AS t(tick, ord)
    ORDER BY t.ord
    RETURNING queue, run_at
),
notified AS (
    SELECT pg_notify($5, q.queue) FROM (SELECT DISTINCT queue FROM inserted
                                        WHERE run_at <= now()) AS q
)
SELECT (SELECT count(*) FROM advanced) AS advanced,
       (SELECT count(*) FROM inserted) AS inserted,
       (SELECT count(*) FROM notified) AS notified;

-- name: schedule_pause
UPDATE /*schema*/schedules SET paused = true, updated_at = now()
WHERE name = $1 AND NOT paused
RETURNING name;

-- name: schedule_resume
-- Ticks that passed while the schedule was paused are not run: it resumes at $2, the
-- first tick after now, computed from the definition of version $3.
UPDATE /*schema*/schedules SET paused = false, next_run_at = $2, updated_at = now()
WHERE name = $1 AND paused AND version = $3
RETURNING name;

-- name: schedule_remove
DELETE FROM /*schema*/schedules WHERE name = $1 RETURNING name;

-- name: schedule_run_now
-- One extra job of the schedule, runnable now, outside its ticks (which stay as they are).
WITH inserted AS (
    INSERT INTO /*schema*/jobs (task, queue, args, kwargs, priority, max_attempts, request_id)
    SELECT s.task, s.queue, s.args, s.kwargs, s.priority, s.max_attempts, $2
    FROM /*schema*/schedules AS s
    WHERE s.name = $1
    RETURNING *
),
notified AS (
    SELECT pg_notify($3, q.queue) FROM (SELECT DISTINCT queue FROM inserted) AS q
)
SELECT * FROM inserted WHERE (SELECT count(*) FROM notified) >= 0;
