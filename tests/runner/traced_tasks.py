"""Module-level handlers for the tracing tests' process executor (a child imports a
handler by module and qualname). The runner here never connects; tests register the
functions on their own runner."""

from __future__ import annotations

from taskrunner import TaskRunner

runner = TaskRunner(schema="traced_tasks_unused")  # never opened


@runner.task(executor="process")
async def enqueue_from_process(dsn: str, schema: str, task: str) -> int:
    """Enqueue `task` from inside a process handler, through a tracing runner."""
    async with TaskRunner(dsn, schema=schema, tracing=True, strict_names=False) as inner:
        job = await inner.enqueue(task)
    return job.id
