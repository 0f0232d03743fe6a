-- 0003_enqueue_notifies: enqueue statements send their own wake-up notifications.
--
-- The statement trigger of 0001 captured every inserted row in a transition table and
-- ran a PL/pgSQL query over it: about a quarter of the database's work for a single-job
-- enqueue. Every enqueue statement of the queue now notifies the channel "<schema>.jobs"
-- itself, with the same payload (each queue of its due jobs, once per statement),
-- delivered when its transaction commits, as before. Rows inserted by other means are
-- found by the workers' poll instead.

DROP TRIGGER jobs_inserted_notify ON /*schema*/jobs;

DROP FUNCTION /*schema*/notify_jobs_inserted();
