-- 0004_schema_settings: settings that belong to the schema, not to one process.
--
-- The lifetime of an idempotency key was each process's own option: a worker pruned by
-- its own value, so a worker started with a shorter one deleted jobs (and freed their
-- keys) that the application's enqueues still meant to deduplicate. The schema now holds
-- it; enqueues and the pruner read it in SQL. A runner opened with an explicit
-- idempotency_ttl writes it here.
--
-- One row (id is always true); later settings become columns.

CREATE TABLE /*schema*/settings (
    id               boolean PRIMARY KEY DEFAULT true CHECK (id),
    idempotency_ttl  float8  NOT NULL DEFAULT 86400 CHECK (idempotency_ttl >= 0
                                                           AND idempotency_ttl < 'infinity'),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

INSERT INTO /*schema*/settings DEFAULT VALUES;
