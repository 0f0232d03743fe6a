-- 0007_retention_and_archive: how long finished jobs are kept, per final status, and the
-- archive table that cleanup(..., "archive") moves jobs into.
--
-- Retention is the schema's, like the key lifetime of 0004: every worker prunes by the
-- same rule, read in SQL at each prune, whatever options its own process was given. A
-- runner opened with an explicit retention writes it here (the last one opened wins).
-- Per column: NULL keeps the job as long as its idempotency key would live (the
-- settings' idempotency_ttl, so a later change of that lifetime moves it along);
-- 'infinity' keeps it until a cleanup acts on it; else the seconds after finished_at.
-- Keyed jobs are kept at least until their key expires, whatever the column says.

ALTER TABLE /*schema*/settings
    ADD COLUMN retain_succeeded float8
        CHECK (retain_succeeded >= 0 AND retain_succeeded <> 'NaN'),
    ADD COLUMN retain_failed float8 DEFAULT 604800
        CHECK (retain_failed >= 0 AND retain_failed <> 'NaN'),
    ADD COLUMN retain_cancelled float8
        CHECK (retain_cancelled >= 0 AND retain_cancelled <> 'NaN');

-- Pruning and cleanup walk one final status at a time, oldest finished first: this index
-- serves that walk exactly (the one of 0001 on finished_at alone made a status filter
-- read every other status's rows too). It replaces that index, so a finishing job still
-- writes one index entry for its finish, not two.
CREATE INDEX jobs_finished_by_status ON /*schema*/jobs (status, finished_at)
    WHERE finished_at IS NOT NULL;
DROP INDEX /*schema*/jobs_finished_at;

-- Archived jobs: the same columns as jobs (and the time they were archived). No worker
-- reads this table, so nothing here is ever claimed; get_job and list_jobs(archived=True)
-- read it. It has no key index: an archived job's idempotency key is free again.
-- A migration that adds a column to jobs adds it here too (a test checks that they match).
CREATE TABLE /*schema*/archived_jobs (
    LIKE /*schema*/jobs INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    archived_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
);

CREATE INDEX archived_jobs_finished_at ON /*schema*/archived_jobs (finished_at);
