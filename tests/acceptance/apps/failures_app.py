"""An app whose handlers fail in the ways that once broke a worker (schema from
$TR_TEST_SCHEMA): a result PostgreSQL cannot store, an exception whose str() raises,
SystemExit and KeyboardInterrupt. Each job must end in a final status."""

from __future__ import annotations

import os

from taskrunner import TaskRunner

runner = TaskRunner(schema=os.environ.get("TR_TEST_SCHEMA", "taskrunner"))


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for this one")


@runner.task(name="failures.nul_result")
async def nul_result() -> str:
    return "a\x00b"


@runner.task(name="failures.unprintable", max_attempts=1)
async def unprintable() -> None:
    raise Unprintable()


@runner.task(name="failures.exits", max_attempts=1)
async def exits() -> None:
    raise SystemExit(3)


@runner.task(name="failures.interrupts", max_attempts=1, executor="thread")
def interrupts() -> None:
    raise KeyboardInterrupt


@runner.task(name="failures.fine")
async def fine(value: int) -> int:
    return value
