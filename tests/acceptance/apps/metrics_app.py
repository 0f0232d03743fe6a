"""An app for the metrics test's worker process: `python -m taskrunner worker
tests.acceptance.apps.metrics_app:runner --metrics-port PORT` with $TASKRUNNER_DSN and
$TR_TEST_SCHEMA set."""

from __future__ import annotations

import os

from taskrunner import TaskRunner

runner = TaskRunner(schema=os.environ.get("TR_TEST_SCHEMA", "taskrunner"))


@runner.task(name="metrics.ok", queue="mq")
async def ok(n: int) -> int:
    return n


@runner.task(name="metrics.boom", queue="mq", max_attempts=1)
async def boom() -> None:
    raise ValueError("boom")


@runner.task(name="metrics.fan_out", queue="mq")
async def fan_out(count: int) -> None:
    """Enqueues from inside the worker: counted by its enqueue counter."""
    await runner.enqueue_many(ok, list(range(count)))
