"""taskrunner's worker-side tasks, declared the canonical way: a module-level runner and
``@runner.task`` functions, so that the process executor's children can import them.

Imported only in the worker process (and its pool children), after the adapter has set
$TASKRUNNER_DSN: the runner takes its DSN from there (API.md's DSN resolution).
"""

from __future__ import annotations

from benchmarks.compare import record
from taskrunner import TaskRunner

SCHEMA = "taskrunner"  # the runner's default schema

runner = TaskRunner(schema=SCHEMA, auto_migrate=True)


@runner.task(name="bench.noop")
async def noop(seq: int, t: float) -> None:
    record.hit(seq, t)


@runner.task(name="bench.burn", executor="process")
def burn(seq: int, t: float, iters: int) -> int:
    return record.burn(seq, t, iters)
