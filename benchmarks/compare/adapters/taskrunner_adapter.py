"""taskrunner through its public API only (the documented API): nothing from its internals.

* schema: ``TaskRunner(dsn, auto_migrate=True)`` migrates on ``open()``;
* producer: ``runner.enqueue(task, *args)`` for one job, ``runner.enqueue_many(task,
  [args, ...])`` for a batch (one round trip);
* worker: ``runner.run_worker(concurrency=..., stop_when_idle=...)`` under uvloop, in the
  main thread of its process so that it handles SIGINT/SIGTERM itself;
* the CPU-bound task is registered with ``executor="process"``.

The worker uses the canonical layout, a module-level runner with ``@runner.task``
functions (``taskrunner_tasks.py``, DSN from $TASKRUNNER_DSN), because the process
executor's children import the task by module and name. The producer runs in the
harness, against a new database each run, so it builds a runner per DSN and registers
functions of the same names and signatures on it (it only enqueues them).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib.metadata import version as _pkg_version
from typing import Any

import asyncpg

from benchmarks.compare import record
from benchmarks.compare.adapters.base import Adapter, Args, Task

SCHEMA = "taskrunner"  # the runner's default schema (as in taskrunner_tasks.py)


async def noop(seq: int, t: float) -> None:
    """Producer-side twin of taskrunner_tasks.noop (same name and signature)."""
    record.hit(seq, t)


def burn(seq: int, t: float, iters: int) -> int:
    """Producer-side twin of taskrunner_tasks.burn (same name and signature)."""
    return record.burn(seq, t, iters)


def make_runner(dsn: str) -> tuple[Any, dict[str, Any]]:
    """A producer TaskRunner for dsn with the two benchmark task names registered on it."""
    from taskrunner import TaskRunner  # imported late: the runner may not exist yet

    runner = TaskRunner(dsn, schema=SCHEMA, auto_migrate=True)
    tasks = {
        "noop": runner.task(name="bench.noop")(noop),
        "burn": runner.task(name="bench.burn", executor="process")(burn),
    }
    return runner, tasks


class TaskrunnerAdapter(Adapter):
    name = "taskrunner"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self.runner: Any = None
        self.tasks: dict[str, Any] = {}

    def version(self) -> str:
        return _pkg_version("taskrunner")

    def settings(self) -> dict[str, Any]:
        return {
            "driver": f"its own (asyncpg {_pkg_version('asyncpg')}), uvloop",
            "worker": "TaskRunner.run_worker",
            "concurrency": self.concurrency,
            "stop_when_idle": "True for drain/cpu, False otherwise (stopped by SIGTERM)",
            "schema": f"{SCHEMA!r}, auto_migrate=True",
            "pools": "the runner's defaults (the public API has no pool-size option)",
            "wake-up": "the runner's default (LISTEN/NOTIFY per its migrations)",
            "payload": "task args (seq: int, t: float)",
            "finished": f"{SCHEMA}.jobs rows with status 'succeeded'",
            "cpu jobs": f'executor="process" (os.cpu_count() = {os.cpu_count()})',
        }

    async def install(self, dsn: str) -> None:
        runner, _ = make_runner(dsn)
        async with runner:
            pass

    async def open_producer(self, dsn: str) -> None:
        self.runner, self.tasks = make_runner(dsn)
        await self.runner.open()

    async def close_producer(self) -> None:
        if self.runner is not None:
            await self.runner.close()
            self.runner = None

    async def enqueue_one(self, task: Task, args: Args) -> None:
        await self.runner.enqueue(self.tasks[task], *args)

    async def enqueue_batch(self, task: Task, args: Sequence[Args]) -> None:
        await self.runner.enqueue_many(self.tasks[task], list(args))

    async def counts(self, dsn: str) -> dict[str, int]:
        conn = await asyncpg.connect(dsn)
        try:
            pending = await conn.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.jobs WHERE status IN ('queued', 'running')"
            )
            finished = await conn.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.jobs WHERE status = 'succeeded'"
            )
            return {"pending": pending, "finished": finished}
        finally:
            await conn.close()

    async def run_worker(self, dsn: str, *, drain: bool) -> None:
        os.environ["TASKRUNNER_DSN"] = dsn  # before the import: the tasks module reads it
        from benchmarks.compare.adapters import taskrunner_tasks

        runner = taskrunner_tasks.runner
        async with runner:
            record.RECORDER.ready()
            await runner.run_worker(concurrency=self.concurrency, stop_when_idle=drain)
            record.RECORDER.returned()


ADAPTER = TaskrunnerAdapter
