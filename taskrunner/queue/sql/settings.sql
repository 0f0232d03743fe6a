-- name: get_idempotency_ttl
-- The schema's key lifetime in seconds (0004's settings row).
SELECT idempotency_ttl FROM /*schema*/settings;

-- name: set_idempotency_ttl
-- Sets the schema's key lifetime; returns the previous value when it changed, no row when
-- it was already $1.
WITH previous AS (SELECT idempotency_ttl FROM /*schema*/settings)
UPDATE /*schema*/settings AS s
SET idempotency_ttl = $1::float8, updated_at = now()
FROM previous
WHERE s.idempotency_ttl IS DISTINCT FROM $1::float8
RETURNING previous.idempotency_ttl;
