-- 0009_sql_interface: the queue in SQL, for triggers and for workers in any language.
--
--   enqueue(task, args, kwargs, queue, priority, run_at, max_attempts, idempotency_key,
--           request_id) -> the job's id
--   enqueue_row(task) / enqueue_row_id(task, column) / enqueue_fields(task, column...)
--       trigger functions: a job per inserted (updated, deleted) row
--   claim(worker, tasks, lease, max_jobs) -> id, lease_id, task, args, kwargs, attempts,
--       max_attempts, request_id
--   complete(job_id, lease_id, result) / fail(job_id, lease_id, error, retry_at) -> applied
--
-- A job written here is like one written by Python: the same NOTIFY wakes idle workers
-- when the transaction commits, the same unique index holds idempotency keys, the same
-- key lifetime (settings) frees them. Python checks arguments against the task's
-- signature when it enqueues; SQL cannot see signatures, so the worker checks them before
-- it runs a job, and a job whose arguments do not fit fails at once without retries.
--
-- "Same call" for an idempotency key: Python compares calls bound to the task's
-- signature (defaults applied, so f("a") and f(to="a") are one call). SQL has no
-- signature to bind to, so wherever a SQL enqueue is one of the two, the calls are the
-- same when their args and their kwargs are equal as jsonb (as written). Jobs written
-- here carry the fingerprint 'sql:' || sha256 of [args, kwargs] as jsonb text, and a
-- Python enqueue that meets such a holder compares the arguments that way too.
--
-- Every value arrives as a parameter and is stored as data; nothing here builds SQL from
-- its input. Task names and queues follow the Python limits (1 to 200 characters).

-- The wake-up channel "<schema>.jobs", written into the function as a constant when
-- this migration runs (the schema's name is known only then): an immutable function of
-- a constant is folded into the plans that call it. Looking the name up in the catalog
-- on every enqueue cost a quarter of the enqueue.
DO $do$
BEGIN
    EXECUTE format(
        'CREATE FUNCTION /*schema*/jobs_channel() RETURNS text LANGUAGE sql IMMUTABLE AS %L',
        'SELECT ' || quote_literal((
            SELECT n.nspname || '.jobs'
            FROM pg_catalog.pg_class AS c
            JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
            WHERE c.oid = '/*schema*/jobs'::regclass)));
END
$do$;

CREATE FUNCTION /*schema*/sql_fingerprint(p_args jsonb, p_kwargs jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'sql:' || encode(sha256(convert_to(jsonb_build_array(p_args, p_kwargs)::text,
                                              'UTF8')), 'hex')
$$;

CREATE FUNCTION /*schema*/enqueue(
    task text,
    args jsonb DEFAULT '[]',
    kwargs jsonb DEFAULT '{}',
    queue text DEFAULT 'default',
    priority integer DEFAULT 0,
    run_at timestamptz DEFAULT NULL,
    max_attempts integer DEFAULT NULL,
    idempotency_key text DEFAULT NULL,
    request_id text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_args    jsonb := coalesce(enqueue.args, '[]');
    v_kwargs  jsonb := coalesce(enqueue.kwargs, '{}');
    v_queue   text := coalesce(enqueue.queue, 'default');
    v_run_at  timestamptz := coalesce(enqueue.run_at, now());
    v_request text := coalesce(enqueue.request_id, replace(gen_random_uuid()::text, '-', ''));
    v_id      bigint;
    v_holder  /*schema*/jobs;
    v_ttl     float8;
BEGIN
    IF enqueue.task IS NULL OR enqueue.task = '' OR char_length(enqueue.task) > 200 THEN
        RAISE EXCEPTION 'taskrunner.enqueue: task must be 1 to 200 characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_queue = '' OR char_length(v_queue) > 200 THEN
        RAISE EXCEPTION 'taskrunner.enqueue: queue must be 1 to 200 characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(v_args) <> 'array' OR jsonb_typeof(v_kwargs) <> 'object' THEN
        RAISE EXCEPTION 'taskrunner.enqueue: args must be a JSON array and kwargs a JSON object'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF enqueue.idempotency_key = '' OR char_length(enqueue.idempotency_key) > 400 THEN
        RAISE EXCEPTION 'taskrunner.enqueue: idempotency_key must be 1 to 400 characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF enqueue.request_id = '' OR char_length(enqueue.request_id) > 200 THEN
        RAISE EXCEPTION 'taskrunner.enqueue: request_id must be 1 to 200 characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Bounded: each round either inserts, finds the visible holder, or frees an expired
    -- key; a holder not yet visible (committed after this statement began) needs one more.
    FOR v_round IN 1..20 LOOP
        INSERT INTO /*schema*/jobs AS j (task, queue, args, kwargs, priority, run_at,
                                         max_attempts, idempotency_key, fingerprint,
                                         request_id)
        VALUES (enqueue.task, v_queue, v_args, v_kwargs, coalesce(enqueue.priority, 0),
                v_run_at, coalesce(enqueue.max_attempts, 5), enqueue.idempotency_key,
                CASE WHEN enqueue.idempotency_key IS NOT NULL
                     THEN /*schema*/sql_fingerprint(v_args, v_kwargs) END,
                v_request)
        ON CONFLICT (task, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
        RETURNING j.id INTO v_id;
        IF v_id IS NOT NULL THEN
            IF v_run_at <= now() THEN
                PERFORM pg_notify(/*schema*/jobs_channel(), v_queue);
            END IF;
            RETURN v_id;
        END IF;
        SELECT * INTO v_holder FROM /*schema*/jobs AS e
        WHERE e.task = enqueue.task AND e.idempotency_key = enqueue.idempotency_key;
        IF FOUND THEN
            SELECT s.idempotency_ttl INTO v_ttl FROM /*schema*/settings AS s;
            IF v_holder.finished_at IS NOT NULL
               AND v_holder.finished_at <= now() - make_interval(secs => v_ttl) THEN
                UPDATE /*schema*/jobs AS e SET idempotency_key = NULL
                WHERE e.id = v_holder.id AND e.idempotency_key = enqueue.idempotency_key;
                CONTINUE;
            END IF;
            IF v_holder.args = v_args AND v_holder.kwargs = v_kwargs THEN
                RETURN v_holder.id;
            END IF;
            RAISE EXCEPTION 'idempotency conflict: key % of task % is held by job % with other arguments',
                    quote_literal(enqueue.idempotency_key), quote_literal(enqueue.task),
                    v_holder.id
                USING ERRCODE = 'unique_violation',
                      DETAIL = 'the same key and the same args and kwargs return the existing job';
        END IF;
    END LOOP;
    RAISE EXCEPTION 'taskrunner.enqueue: could not settle idempotency key % after 20 rounds',
        quote_literal(enqueue.idempotency_key) USING ERRCODE = 'serialization_failure';
END;
$$;

-- The trigger functions: a job per row, its kwargs taken from the row (NEW, or OLD for a
-- DELETE), enqueued in the row's transaction. TG_ARGV[0] is the task; the columns are
-- read from the row as jsonb, never spliced into SQL.
CREATE FUNCTION /*schema*/enqueue_row() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_row jsonb;
BEGIN
    IF TG_LEVEL <> 'ROW' OR TG_NARGS < 1 THEN
        RAISE EXCEPTION 'enqueue_row(task) is a FOR EACH ROW trigger with the task name';
    END IF;
    v_row := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
    PERFORM /*schema*/enqueue(TG_ARGV[0], '[]', jsonb_build_object('row', v_row));
    RETURN NULL;
END;
$$;

CREATE FUNCTION /*schema*/enqueue_fields() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_row    jsonb;
    v_kwargs jsonb := '{}';
BEGIN
    IF TG_LEVEL <> 'ROW' OR TG_NARGS < 2 THEN
        RAISE EXCEPTION '%(task, column, ...) is a FOR EACH ROW trigger with a task and columns',
            TG_NAME;
    END IF;
    v_row := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
    FOR i IN 1..TG_NARGS - 1 LOOP
        IF NOT v_row ? TG_ARGV[i] THEN
            RAISE EXCEPTION 'trigger %: table % has no column %', TG_NAME, TG_TABLE_NAME,
                quote_ident(TG_ARGV[i]);
        END IF;
        v_kwargs := v_kwargs || jsonb_build_object(TG_ARGV[i], v_row -> TG_ARGV[i]);
    END LOOP;
    PERFORM /*schema*/enqueue(TG_ARGV[0], '[]', v_kwargs);
    RETURN NULL;
END;
$$;

-- enqueue_row_id(task, column): enqueue_fields with one column, the row's id by name.
CREATE FUNCTION /*schema*/enqueue_row_id() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_row jsonb;
BEGIN
    IF TG_LEVEL <> 'ROW' OR TG_NARGS <> 2 THEN
        RAISE EXCEPTION 'enqueue_row_id(task, column) is a FOR EACH ROW trigger with two arguments';
    END IF;
    v_row := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
    IF NOT v_row ? TG_ARGV[1] THEN
        RAISE EXCEPTION 'trigger %: table % has no column %', TG_NAME, TG_TABLE_NAME,
            quote_ident(TG_ARGV[1]);
    END IF;
    PERFORM /*schema*/enqueue(TG_ARGV[0], '[]',
                              jsonb_build_object(TG_ARGV[1], v_row -> TG_ARGV[1]));
    RETURN NULL;
END;
$$;

-- Claims up to max_jobs runnable jobs of the given tasks for `worker`, each under a fresh
-- lease of `lease`: the unrestricted queues as the Python workers' claim does, then the
-- limited ones through claim_limited() (0008), so pauses and limits hold for SQL workers
-- too. A job with no attempts left fails instead and is not returned.
CREATE FUNCTION /*schema*/claim(
    worker text, tasks text[], lease interval DEFAULT interval '30 seconds',
    max_jobs integer DEFAULT 1
) RETURNS TABLE (id bigint, lease_id bigint, task text, args jsonb, kwargs jsonb,
                 attempts integer, max_attempts integer, request_id text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_secs   float8 := extract(epoch FROM claim.lease);
    v_leases float8[];
    v_job    /*schema*/jobs;
    v_left   integer := claim.max_jobs;
    v_queue  text;
BEGIN
    IF claim.worker IS NULL OR claim.worker = '' OR claim.tasks IS NULL
       OR v_secs IS NULL OR v_secs <= 0 THEN
        RAISE EXCEPTION 'taskrunner.claim: worker, tasks and a positive lease are required'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_leases := array_fill(v_secs, ARRAY[greatest(cardinality(claim.tasks), 1)]);
    FOR v_queue IN
        SELECT q.name FROM /*schema*/queues AS q
        WHERE NOT q.paused AND (q.concurrency IS NOT NULL OR q.rate_limit IS NOT NULL)
        ORDER BY random()
    LOOP
        EXIT WHEN v_left <= 0;
        FOR v_job IN SELECT * FROM /*schema*/claim_limited(v_queue, claim.tasks, v_left,
                                                           v_leases, claim.worker)
        LOOP
            IF v_job.status = 'running' THEN
                v_left := v_left - 1;
                RETURN QUERY SELECT v_job.id, v_job.lease_id, v_job.task, v_job.args,
                                    v_job.kwargs, v_job.attempts, v_job.max_attempts,
                                    v_job.request_id;
            END IF;
        END LOOP;
    END LOOP;
    IF v_left <= 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH picked AS (
        SELECT j.id
        FROM /*schema*/jobs AS j
        WHERE j.status = 'queued'
          AND j.run_at <= now()
          AND array_position(claim.tasks, j.task) IS NOT NULL
          AND nullif(j.queue = ANY(ARRAY(SELECT q.name FROM /*schema*/queues AS q
                                         WHERE q.paused OR q.concurrency IS NOT NULL
                                            OR q.rate_limit IS NOT NULL)), true) IS NOT NULL
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT v_left
        FOR UPDATE SKIP LOCKED
    ),
    claimed AS (
        UPDATE /*schema*/jobs AS j
        SET status = CASE WHEN j.attempts < j.max_attempts THEN 'running' ELSE 'failed'
                     END::/*schema*/job_status,
            attempts = CASE WHEN j.attempts < j.max_attempts THEN j.attempts + 1
                            ELSE j.attempts END,
            lease_id = CASE WHEN j.attempts < j.max_attempts
                THEN ('x' || left(replace(gen_random_uuid()::text, '-', ''), 16))
                     ::bit(64)::bigint END,
            lease_owner = CASE WHEN j.attempts < j.max_attempts THEN claim.worker END,
            lease_expires_at = CASE WHEN j.attempts < j.max_attempts
                THEN now() + claim.lease END,
            started_at = CASE WHEN j.attempts < j.max_attempts THEN now() ELSE j.started_at END,
            finished_at = CASE WHEN j.attempts < j.max_attempts THEN j.finished_at
                               ELSE now() END,
            last_error = CASE WHEN j.attempts < j.max_attempts THEN j.last_error
                ELSE 'not run: no attempts left (' || j.attempts || ' of max_attempts '
                     || j.max_attempts || ' already used) when it was claimed' END
        WHERE j.id = ANY(ARRAY(SELECT p.id FROM picked AS p))
        RETURNING j.*
    )
    SELECT c.id, c.lease_id, c.task, c.args, c.kwargs, c.attempts, c.max_attempts,
           c.request_id
    FROM claimed AS c
    WHERE c.status = 'running'
    ORDER BY c.id;
END;
$$;

-- Fenced by the lease, like complete_many: applies only while the caller's lease holds.
CREATE FUNCTION /*schema*/complete(job_id bigint, lease_id bigint, result jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE sql AS $$
    WITH done AS (
        UPDATE /*schema*/jobs AS j
        SET status = 'succeeded', result = complete.result, finished_at = now(),
            lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL
        WHERE j.id = complete.job_id AND j.lease_id = complete.lease_id
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM done)
$$;

-- Fenced like fail_many: with retry_at and attempts left the job is queued again for
-- then; otherwise it fails for good (or ends cancelled if a cancel was asked).
CREATE FUNCTION /*schema*/fail(
    job_id bigint, lease_id bigint, error text DEFAULT NULL, retry_at timestamptz DEFAULT NULL
) RETURNS boolean
LANGUAGE sql AS $$
    WITH done AS (
        UPDATE /*schema*/jobs AS j
        SET status = CASE
                WHEN j.cancel_requested THEN 'cancelled'
                WHEN fail.retry_at IS NOT NULL AND j.attempts < j.max_attempts THEN 'queued'
                ELSE 'failed' END::/*schema*/job_status,
            run_at = CASE
                WHEN NOT j.cancel_requested AND fail.retry_at IS NOT NULL
                     AND j.attempts < j.max_attempts
                THEN greatest(fail.retry_at, now()) ELSE j.run_at END,
            finished_at = CASE
                WHEN NOT j.cancel_requested AND fail.retry_at IS NOT NULL
                     AND j.attempts < j.max_attempts
                THEN NULL ELSE now() END,
            last_error = coalesce(fail.error, 'failed'),
            lease_id = NULL, lease_owner = NULL, lease_expires_at = NULL
        WHERE j.id = fail.job_id AND j.lease_id = fail.lease_id
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM done)
$$;
