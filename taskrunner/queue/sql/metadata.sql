-- name: set_metadata
-- Creates or replaces a key's value (0006's metadata table).
INSERT INTO /*schema*/metadata (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now();

-- name: get_metadata
-- A key's value; no row when the key is not set.
SELECT value FROM /*schema*/metadata WHERE key = $1;

-- name: delete_metadata
-- Removes a key; returns whether it was set.
WITH deleted AS (DELETE FROM /*schema*/metadata WHERE key = $1 RETURNING 1)
SELECT count(*) > 0 FROM deleted;
