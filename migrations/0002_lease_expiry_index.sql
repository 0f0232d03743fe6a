-- 0002_lease_expiry_index: the index that finds expired leases no longer matches the acks.
--
-- jobs_running_leases was partial on status = 'running', and so was every ack's
-- WHERE clause: with statistics taken while nothing ran, the planner took that index for
-- the cheapest way to the acked rows and walked all of it, dead entries included, on
-- every ack. Keyed on the same column but partial on the lease itself, the new index
-- serves the rescue of expired leases (lease_expires_at < now() implies its predicate)
-- and cannot serve an ack, whose rows come by primary key. A lease expiry is set exactly
-- while a job runs, so the index holds the same rows as before.

DROP INDEX /*schema*/jobs_running_leases;

CREATE INDEX jobs_lease_expiry ON /*schema*/jobs (lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;

-- 0001's lease_ids sequence stays: claims now draw random lease ids instead, but workers
-- of the previous version still draw from it while a rolling upgrade is under way.

-- Fencing rests on this: a job holds a lease exactly while it runs. Acks and renewals
-- match on the lease alone.
ALTER TABLE /*schema*/jobs ADD CONSTRAINT jobs_lease_only_while_running
    CHECK ((status = 'running') = (lease_id IS NOT NULL));
