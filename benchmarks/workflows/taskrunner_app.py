"""The taskrunner side's tasks: the same names, signatures and bodies as celery_app's.

`runner` is the worker's (module level, as users declare it; DSN from $TASKRUNNER_DSN);
the harness builds a producer runner per run with `make_runner(dsn)`.
"""

from __future__ import annotations

import time
from typing import Any

from taskrunner import TaskRunner

SCHEMA = "taskrunner"


async def noop(i: int) -> int:
    return i


async def body(results: list[int]) -> list[float]:
    """The chord's body: how many results it got, their sum, and when it ended."""
    return [len(results), sum(results), time.time()]


async def step(previous: int) -> int:
    return previous + 1


async def last(previous: int) -> list[float]:
    """A chain's last step: the count of steps before it plus itself, and when it ended."""
    return [previous + 1, time.time()]


def make_runner(dsn: str | None) -> tuple[TaskRunner, dict[str, Any]]:
    runner = TaskRunner(dsn, schema=SCHEMA)
    tasks = {
        name: runner.task(name=f"wf.{name}")(func)
        for name, func in (("noop", noop), ("body", body), ("step", step), ("last", last))
    }
    return runner, tasks


runner, _tasks = make_runner(None)
