-- 0013_workflow_retention: indexes that let retention and cleanup remove finished
-- workflows (queue/sql/workflow_cleanup.sql).
--
-- A workflow's steps and edges go with its row (ON DELETE CASCADE of 0010); without an
-- index on their workflow_id each cascade would read the whole table. The finished
-- workflows are walked oldest first, as finished jobs are.

CREATE INDEX workflow_steps_workflow ON /*schema*/workflow_steps (workflow_id);
CREATE INDEX workflow_edges_workflow ON /*schema*/workflow_edges (workflow_id);
CREATE INDEX workflows_finished ON /*schema*/workflows (status, finished_at)
    WHERE finished_at IS NOT NULL;
