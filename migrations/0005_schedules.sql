-- 0005_schedules: periodic tasks.
--
-- One row per schedule. next_run_at is its first tick not enqueued yet: a worker that
-- finds it due enqueues the tick's job and moves next_run_at on in one statement that
-- names the next_run_at (and version) it read, so of any number of workers that race
-- for a tick exactly one enqueues it; the others match no row (a compare-and-set, no
-- leader). version counts every change of the definition, so a tick planned from an
-- older definition is never written.

CREATE TABLE /*schema*/schedules (
    name          text        PRIMARY KEY,
    task          text        NOT NULL,
    cron          text,
    every         interval,
    timezone      text        NOT NULL DEFAULT 'UTC',
    args          jsonb       NOT NULL DEFAULT '[]',
    kwargs        jsonb       NOT NULL DEFAULT '{}',
    queue         text        NOT NULL DEFAULT 'default',
    priority      integer     NOT NULL DEFAULT 0,
    max_attempts  integer     NOT NULL DEFAULT 5,
    missed        text        NOT NULL DEFAULT 'latest',
    paused        boolean     NOT NULL DEFAULT false,
    next_run_at   timestamptz NOT NULL,
    last_run_at   timestamptz,
    version       bigint      NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedules_cron_or_every CHECK ((cron IS NULL) <> (every IS NULL)),
    CONSTRAINT schedules_every_at_least_a_second CHECK (every IS NULL OR every >= interval '1 second'),
    CONSTRAINT schedules_missed_policy CHECK (missed IN ('latest', 'skip', 'all')),
    CONSTRAINT schedules_max_attempts_positive CHECK (max_attempts >= 1)
);

-- The workers' poll: schedules that are not paused, soonest tick first.
CREATE INDEX schedules_due ON /*schema*/schedules (next_run_at) WHERE NOT paused;
