-- The database-side ceiling of a job queue on this machine, for pgbench:
--
--     pgbench -n -c 16 -j 2 -T 10 -f benchmarks/pgbench/claim_delete.sql <db>
--
-- Each transaction claims the 10 oldest queued jobs with FOR UPDATE SKIP LOCKED and
-- deletes them: claim and ack in one statement, one transaction, one round trip, no
-- client-side work at all. jobs/s = tps x 10. The table is the baseline's (see
-- benchmarks/compare/adapters/baseline.py); benchmarks/compare/pgbench.py creates and
-- fills it, runs pgbench and checks that it never ran dry.
WITH claimed AS (
    SELECT id FROM bench_jobs
    WHERE status = 0
    ORDER BY id
    LIMIT 10
    FOR UPDATE SKIP LOCKED
)
DELETE FROM bench_jobs AS j
USING claimed AS c
WHERE j.id = c.id;
