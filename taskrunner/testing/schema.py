"""`fresh_schema`: the application's runner on a schema of its own for one test.

The runner is re-pointed rather than copied: tasks keep a reference to the runner they
were declared on, so application code that calls `send_email.enqueue(...)` during the
test writes into the test's schema too. Everything the runner had is put back after.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg

from taskrunner import TaskRunner, TaskRunnerError

DEFAULT_PREFIX = "taskrunner_test_"
DROP_TIMEOUT = 30.0


@contextlib.asynccontextmanager
async def fresh_schema(
    runner: TaskRunner, *, dsn: str | None = None, prefix: str = DEFAULT_PREFIX
) -> AsyncIterator[TaskRunner]:
    """Open `runner` on a new, migrated schema (of the database of `dsn`, or else the
    runner's own DSN resolution) and yield it; on exit close it, drop the schema with
    everything in it, and give the runner back its own DSN and schema.

    The runner must not be open: an open one is in use by something else."""
    if runner.is_open:
        raise TaskRunnerError(
            f"fresh_schema needs a runner that is not open; {runner!r} is open on schema "
            f"{runner.schema!r} (close it first, or let the test open it)"
        )
    saved = (runner.dsn, runner.schema, runner.auto_migrate, runner._target)
    schema = f"{prefix}{uuid.uuid4().hex[:16]}"
    if dsn is not None:
        runner.dsn = dsn
    runner.schema = schema
    runner.auto_migrate = True
    runner._target = None  # resolved again: the DSN may be another one now
    try:
        await runner.open()
        yield runner
    finally:
        try:
            await _close_and_drop(runner, schema)
        finally:
            runner.dsn, runner.schema, runner.auto_migrate, runner._target = saved


async def _close_and_drop(runner: TaskRunner, schema: str) -> None:
    try:
        target = runner.target  # resolved by open(), even when open() then failed
    except TaskRunnerError:  # not even resolved: nothing was created
        await runner.close()
        return
    await runner.close()
    await _drop(target.dsn, schema, no_cache=target.behind_pooler)


async def _drop(dsn: str, schema: str, *, no_cache: bool) -> None:
    conn = await asyncpg.connect(
        dsn, timeout=DROP_TIMEOUT, statement_cache_size=0 if no_cache else 100
    )
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE', timeout=DROP_TIMEOUT)
    finally:
        await conn.close()
