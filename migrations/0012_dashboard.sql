-- 0012_dashboard: the one index the dashboard's overview needs.
--
-- The overview counts the jobs of each live status per queue from indexes that already
-- exist (queued: jobs_claim_order; running: jobs_lease_expiry), never the whole table.
-- Paused jobs had none. This one is partial on status = 'paused', so enqueue, claim and
-- the acks never write to it (their rows are never paused, and status is already in the
-- predicates of other indexes, so no update that was HOT stops being one): only pausing
-- and resuming a job does.
CREATE INDEX jobs_paused ON /*schema*/jobs (queue) WHERE status = 'paused';
