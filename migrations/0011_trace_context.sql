-- 0011_trace_context: the W3C trace context of the enqueue that wrote a job
-- (TaskRunner(tracing=True)): {"traceparent": ..., "tracestate": ..., "baggage": ...}.
-- Each attempt's span takes it as its parent, so a job's attempts join the trace of the
-- request that queued it, however late and on whichever worker they run. NULL when
-- tracing is off: nothing is written and the claim returns one NULL more.
--
-- Appended at the end of the table (claims return every column by position, in JobRow's
-- order), and to the archive, which keeps the same columns as jobs.
ALTER TABLE /*schema*/jobs ADD COLUMN trace_context jsonb;
ALTER TABLE /*schema*/archived_jobs ADD COLUMN trace_context jsonb;
