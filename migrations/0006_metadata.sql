-- 0006_metadata: a small key/value store beside the queue (set_metadata, get_metadata,
-- delete_metadata), for the state a job system keeps next to its jobs: import cursors,
-- last-seen ids, feature switches. Values are bytes; the caller chooses the encoding.
--
-- The key rule (non-empty, at most 255 characters) is the table's too, so a writer from
-- SQL cannot store a key the runner could not read back.

CREATE TABLE /*schema*/metadata (
    key         text PRIMARY KEY CHECK (key <> '' AND char_length(key) <= 255),
    value       bytea NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
