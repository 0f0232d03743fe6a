-- 0008_queues: queue controls, cluster-wide: pause, a cap on running jobs, a rate limit.
--
-- The database decides, never a worker's memory:
--
-- * Every claim of the queue's ordinary statement (claim_batch) leaves out the queues
--   this table restricts (paused, or with a limit): one read of this small table per
--   claim, not per job. A queue that is not in it, or in it with no restriction, is
--   claimed exactly as before.
-- * A limited queue is claimed only by claim_limited() below, which holds the lock of
--   the queue's row in queue_state while it counts and claims: any number of workers
--   take turns, so no count is ever read stale. Workers learn which queues are limited
--   from this table (every poll interval) only to know where to call it.
--
-- A paused queue starts nothing; its running jobs finish, enqueueing into it still works.
-- Settings apply to the claims that begin after the statement that set them: the jobs of
-- a queue already running when it gets a cap hold slots (configure_queue counts them
-- in), but a claim already under way at that moment may still start its jobs.

CREATE TABLE /*schema*/queues (
    name         text    PRIMARY KEY CHECK (name <> '' AND char_length(name) <= 255),
    paused       boolean NOT NULL DEFAULT false,
    concurrency  integer CHECK (concurrency IS NULL OR concurrency >= 1),
    rate_limit   integer CHECK (rate_limit IS NULL OR rate_limit >= 1),
    rate_per     float8  CHECK (rate_per IS NULL OR (rate_per > 0 AND rate_per < 'infinity')),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT queues_rate_limit_has_period CHECK ((rate_limit IS NULL) = (rate_per IS NULL))
);

-- What the ordinary claim reads once per claim: the names of paused and limited queues,
-- and the pause alone (runnable_exists). Tiny, but the workers' hot-path sessions plan
-- with enable_seqscan off, and a "disabled" sequential scan, however small, costs the
-- plan enough to be compiled by JIT on every claim (a third of a second each).
CREATE INDEX queues_restricted ON /*schema*/queues (name)
    WHERE paused OR concurrency IS NOT NULL OR rate_limit IS NOT NULL;
CREATE INDEX queues_paused ON /*schema*/queues (name) WHERE paused;

-- The moving part of a limited queue, apart from its settings so that the settings table
-- every claim reads stays one clean page. holder_jobs / holder_leases: the claims that
-- took a slot (a job holds its slot while it runs under that lease: an ack, a hand-back
-- or the rescue of an expired lease changes the lease and frees it). recent_starts: when
-- the jobs of the last rate period started.
CREATE TABLE /*schema*/queue_state (
    name           text PRIMARY KEY REFERENCES /*schema*/queues (name) ON DELETE CASCADE,
    holder_jobs    bigint[]      NOT NULL DEFAULT '{}',
    holder_leases  bigint[]      NOT NULL DEFAULT '{}',
    recent_starts  timestamptz[] NOT NULL DEFAULT '{}'
);

-- Claims up to max_jobs jobs of one limited queue for the given tasks, as claim_batch
-- does (same columns, same lease rule, same failure of a job with no attempts left), but
-- no more than its free slots and its rate allow. Claimers of one queue take turns on the
-- lock of its queue_state row; the time of a start is read after that lock is taken, so
-- starts are stamped in the order they happen and a rate window never holds more than
-- rate_limit of them. Jobs are taken strictly in claim order (no SKIP LOCKED: only the
-- lock holder claims this queue), so a serial queue runs its jobs one by one in order.
--
-- A claimer may name jobs of the queue it holds whose handlers have ended but whose
-- outcome is not written yet (p_ended_jobs / p_ended_leases): nothing of them runs any
-- more, so their slots are free at once, not one ack later. Only the holder of a lease
-- knows its 64 random bits, so no one can free another's slot; a job freed that way
-- whose outcome is then lost runs again only through a new claim, which takes a slot.
CREATE FUNCTION /*schema*/claim_limited(
    p_queue text, p_tasks text[], p_max integer, p_leases float8[], p_owner text,
    p_ended_jobs bigint[] DEFAULT '{}', p_ended_leases bigint[] DEFAULT '{}'
) RETURNS SETOF /*schema*/jobs
LANGUAGE plpgsql AS $$
DECLARE
    v_config /*schema*/queues;
    v_state  /*schema*/queue_state;
    v_room   integer := p_max;
    v_stamp  timestamptz;
    v_job    /*schema*/jobs;
BEGIN
    IF p_max IS NULL OR p_max <= 0 THEN
        RETURN;
    END IF;
    SELECT * INTO v_state FROM /*schema*/queue_state WHERE name = p_queue FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_stamp := clock_timestamp();
    SELECT * INTO v_config FROM /*schema*/queues WHERE name = p_queue;
    IF NOT FOUND OR v_config.paused THEN
        RETURN;
    END IF;
    SELECT coalesce(array_agg(h.job_id), '{}'), coalesce(array_agg(h.lease_id), '{}')
    INTO v_state.holder_jobs, v_state.holder_leases
    FROM unnest(v_state.holder_jobs, v_state.holder_leases) AS h(job_id, lease_id)
    WHERE EXISTS (SELECT 1 FROM /*schema*/jobs AS j
                  WHERE j.id = h.job_id AND j.lease_id = h.lease_id)
      AND NOT EXISTS (SELECT 1 FROM unnest(p_ended_jobs, p_ended_leases) AS e(job_id, lease_id)
                      WHERE e.job_id = h.job_id AND e.lease_id = h.lease_id);
    IF v_config.concurrency IS NOT NULL THEN
        v_room := least(v_room, v_config.concurrency - cardinality(v_state.holder_jobs));
    END IF;
    IF v_config.rate_limit IS NOT NULL THEN
        v_state.recent_starts := ARRAY(
            SELECT s FROM unnest(v_state.recent_starts) AS s
            WHERE s > v_stamp - make_interval(secs => v_config.rate_per) ORDER BY s);
        v_room := least(v_room, v_config.rate_limit - cardinality(v_state.recent_starts));
    ELSE
        v_state.recent_starts := '{}';
    END IF;
    IF v_room > 0 THEN
        FOR v_job IN
            WITH picked AS (
                SELECT id
                FROM /*schema*/jobs
                WHERE status = 'queued'
                  AND run_at <= now()
                  AND queue = p_queue
                  AND array_position(p_tasks, task) IS NOT NULL
                ORDER BY priority DESC, run_at, id
                LIMIT v_room
                FOR UPDATE
            )
            UPDATE /*schema*/jobs AS j
            SET status = CASE WHEN j.attempts < j.max_attempts THEN 'running' ELSE 'failed'
                         END::/*schema*/job_status,
                attempts = CASE WHEN j.attempts < j.max_attempts THEN j.attempts + 1
                                ELSE j.attempts END,
                lease_id = CASE WHEN j.attempts < j.max_attempts
                    THEN ('x' || left(replace(gen_random_uuid()::text, '-', ''), 16))
                         ::bit(64)::bigint END,
                lease_owner = CASE WHEN j.attempts < j.max_attempts THEN p_owner END,
                lease_expires_at = CASE WHEN j.attempts < j.max_attempts
                    THEN v_stamp + make_interval(secs => coalesce(
                        (SELECT l.secs FROM unnest(p_tasks, p_leases) AS l(task, secs)
                         WHERE l.task = j.task LIMIT 1), 30)) END,
                started_at = CASE WHEN j.attempts < j.max_attempts THEN v_stamp
                                  ELSE j.started_at END,
                finished_at = CASE WHEN j.attempts < j.max_attempts THEN j.finished_at
                                   ELSE now() END,
                last_error = CASE WHEN j.attempts < j.max_attempts THEN j.last_error
                    ELSE 'not run: no attempts left (' || j.attempts || ' of max_attempts '
                         || j.max_attempts || ' already used) when it was claimed' END
            WHERE j.id = ANY(ARRAY(SELECT id FROM picked))
            RETURNING j.*
        LOOP
            IF v_job.status = 'running' THEN
                v_state.holder_jobs := v_state.holder_jobs || v_job.id;
                v_state.holder_leases := v_state.holder_leases || v_job.lease_id;
                IF v_config.rate_limit IS NOT NULL THEN
                    v_state.recent_starts := v_state.recent_starts || v_stamp;
                END IF;
            END IF;
            RETURN NEXT v_job;
        END LOOP;
    END IF;
    UPDATE /*schema*/queue_state
    SET holder_jobs = v_state.holder_jobs,
        holder_leases = v_state.holder_leases,
        recent_starts = v_state.recent_starts
    WHERE name = p_queue;
END;
$$;
