-- name: extend_leases
-- Renews every lease a worker holds in one statement, each by its own length. Returns the
-- jobs still held, and whether a cancel was asked for each (a second path besides NOTIFY).
UPDATE /*schema*/jobs AS j
SET lease_expires_at = now() + make_interval(secs => t.secs)
FROM unnest($1::bigint[], $2::bigint[], $3::float8[]) AS t(id, lease_id, secs)
WHERE j.id = ANY($1::bigint[]) AND j.id = t.id AND j.lease_id = t.lease_id
RETURNING j.id, j.cancel_requested;
