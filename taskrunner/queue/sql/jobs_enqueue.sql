-- name: enqueue_many
-- Inserts a batch in one round trip. Ids are drawn first so each inserted row maps back to
-- its input position. A taken idempotency key inserts nothing and returns the visible
-- holder instead (inserted = false), with key_expired telling whether its retention
-- ran out: the key lifetime is $12 seconds, or when $12 is null the schema's (its
-- settings). An input whose holder is not visible yet (a concurrent insert committed after
-- this statement's snapshot) returns no row at all; the caller asks again.
-- Payloads arrive as text and are cast here, so the statement works on any asyncpg
-- connection, including a caller's own with the driver's default jsonb codec.
--
-- Like every enqueue statement, it wakes idle workers itself: one notification per queue
-- of its due jobs on the channel "<schema>.jobs" ($13 here), cheaper than a trigger.
-- $14: each job's trace context (migration 0011), a JSON document or null.
WITH input AS (
    SELECT nextval('/*schema*/jobs_id_seq') AS id, t.*
    FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[],
        $7::float8[], $8::int[], $9::text[], $10::text[], $11::text[], $14::text[]
    ) WITH ORDINALITY AS t(task, queue, args, kwargs, priority, run_at, delay, max_attempts,
                          idempotency_key, fingerprint, request_id, trace_context, ord)
),
inserted AS (
    INSERT INTO /*schema*/jobs AS j (id, task, queue, args, kwargs, priority, run_at,
                                     max_attempts, idempotency_key, fingerprint, request_id,
                                     trace_context)
    SELECT id, task, queue, args::jsonb, kwargs::jsonb, priority,
           coalesce(run_at, now() + make_interval(secs => delay)),
           max_attempts, idempotency_key, fingerprint, request_id, trace_context::jsonb
    FROM input
    -- One canonical order of keys, whatever the input's: two batches sharing keys then
    -- take them in the same order, so one may wait for the other but never both for
    -- each other (a deadlock). The ids were drawn in input order above.
    ORDER BY task, idempotency_key, ord
    ON CONFLICT (task, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING j.*
),
notified AS (  -- delivered when the transaction commits, like the rows
    SELECT pg_notify($13, q.queue) FROM (SELECT DISTINCT queue FROM inserted
                                         WHERE run_at <= now()) AS q
)
SELECT i.ord, true AS inserted, false AS key_expired, true AS same_arguments, ins.*
FROM input AS i JOIN inserted AS ins ON ins.id = i.id
WHERE (SELECT count(*) FROM notified) >= 0  -- evaluated once: sends the notifications
UNION ALL
-- same_arguments: for a holder written by SQL enqueue (0009), which has no signature to
-- bind a call to, "the same call" means equal args and kwargs as jsonb.
SELECT i.ord, false, (e.finished_at IS NOT NULL
                      AND e.finished_at <= now() - make_interval(secs => coalesce(
                          $12::float8, (SELECT idempotency_ttl FROM /*schema*/settings)))),
       (e.args = i.args::jsonb AND e.kwargs = i.kwargs::jsonb), e.*
FROM input AS i
JOIN /*schema*/jobs AS e ON e.task = i.task AND e.idempotency_key = i.idempotency_key
WHERE i.idempotency_key IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM inserted AS ins WHERE ins.id = i.id);

-- name: release_expired_keys
-- Frees idempotency keys of finished jobs past their retention ($2 seconds, or the
-- schema's when null), so the key can be reused before the pruner deletes the old row.
-- The old job keeps its id and result.
UPDATE /*schema*/jobs
SET idempotency_key = NULL
WHERE id = ANY($1::bigint[])
  AND finished_at IS NOT NULL
  AND finished_at <= now() - make_interval(secs => coalesce(
      $2::float8, (SELECT idempotency_ttl FROM /*schema*/settings)));

-- name: insert_many
-- The fast path for batches without idempotency keys: nothing can conflict, so no ids
-- are drawn ahead and no holders are looked up. The batch arrives as one JSON array of
-- rows (one parameter, encoded by msgspec, instead of nine arrays the driver walks item
-- by item), and only what the database decides comes back; ids follow input order.
WITH inserted AS (
    INSERT INTO /*schema*/jobs AS j (task, queue, args, kwargs, priority, run_at,
                                     max_attempts, request_id, trace_context)
    SELECT task, queue, args, kwargs, priority,
           coalesce(run_at, now() + make_interval(secs => delay)), max_attempts, request_id,
           trace_context
    FROM jsonb_to_recordset($1::jsonb)
         AS t(ord int, task text, queue text, args jsonb, kwargs jsonb, priority int,
              run_at timestamptz, delay float8, max_attempts int, request_id text,
              trace_context jsonb)
    ORDER BY ord
    RETURNING j.id, j.queue, j.run_at, j.created_at
),
notified AS (
    SELECT pg_notify($2, q.queue) FROM (SELECT DISTINCT queue FROM inserted
                                        WHERE run_at <= now()) AS q
)
SELECT id, run_at, created_at FROM inserted
WHERE (SELECT count(*) FROM notified) >= 0;

-- name: insert_uniform
-- The fastest path, for the usual batch: no idempotency keys, and one task, queue,
-- priority, schedule, attempt limit and request id for every job (what the runner's
-- enqueue_many writes). Only the payloads travel as arrays, as text the driver encodes
-- without a Python call per item, and the keyword arguments only when they differ
-- ($4 is NULL when all are $11: parsed once, not once per row); one row comes back with
-- the ids in input order and the two timestamps every row shares. $12: the batch's trace
-- context (migration 0011), or null.
WITH inserted AS (
    INSERT INTO /*schema*/jobs AS j (task, queue, args, kwargs, priority, run_at,
                                     max_attempts, request_id, trace_context)
    SELECT $1, $2, t.args::jsonb, coalesce(t.kwargs::jsonb, $11::text::jsonb), $5,
           coalesce($6::timestamptz, now() + make_interval(secs => $7::float8)), $8, $9,
           $12::text::jsonb
    FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS t(args, kwargs, ord)
    ORDER BY t.ord
    RETURNING j.id
)
SELECT array_agg(id ORDER BY id) AS ids,
       coalesce($6::timestamptz, now() + make_interval(secs => $7::float8)) AS run_at,
       now() AS created_at,
       CASE WHEN coalesce($6::timestamptz, now() + make_interval(secs => $7::float8)) <= now()
            THEN pg_notify($10, $2) END IS NULL AS notified
FROM inserted;
