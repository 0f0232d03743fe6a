-- name: lock_workflows
-- Run before complete_many, fail_many or release_many (jobs_ack.sql), in their
-- transaction, when a batch holds steps of workflows: locks the rows of the workflows $1
-- in id order, before any job row. The trigger of 0010 locks a step's workflow row after
-- the step's own; two batches holding steps of two workflows in opposite id orders would
-- each hold one workflow and wait for the other (a deadlock). Locked here first, in one
-- order, they queue instead.
SELECT id FROM /*schema*/workflows WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE;
