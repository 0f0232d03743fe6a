"""Module-level handlers for the process executor.

A process-pool child imports a handler by module and qualname and expects a Task there, so
these live at module level on a runner of their own. That runner never connects: tests
register the same functions on their own runner (over their own schema) with
`runner.task(executor="process", ...)(process_tasks.<name>.func)`, and the child, which only
needs the function and its argument codec, finds them here.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from taskrunner import TaskRunner, current_job

runner = TaskRunner(schema="process_tasks_unused")  # never opened


@runner.task(executor="process")
def add(a: int, b: int) -> int:
    return a + b


def context_fields() -> dict[str, Any]:
    """What `current_job()` tells a handler, in any executor."""
    ctx = current_job()
    assert ctx is not None
    return {
        "job_id": ctx.job_id,
        "task": ctx.task,
        "queue": ctx.queue,
        "attempt": ctx.attempt,
        "max_attempts": ctx.max_attempts,
        "request_id": ctx.request_id,
    }


@runner.task(executor="process")
def job_context() -> dict[str, Any]:
    return {**context_fields(), "pid": os.getpid()}


@runner.task(executor="process")
def sleep_with_pid(pid_file: str, seconds: float) -> int:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


@runner.task(executor="process")
def crash(how: str, until_attempt: int) -> str:
    """Dies hard on attempts up to `until_attempt`, then succeeds."""
    ctx = current_job()
    assert ctx is not None
    if ctx.attempt <= until_attempt:
        if how == "exit":
            os._exit(1)
        os.kill(os.getpid(), signal.SIGKILL)
    return f"survived attempt {ctx.attempt}"


@runner.task(executor="process")
def burn(seconds: float) -> int:
    """CPU-bound: spins for `seconds`."""
    deadline = time.monotonic() + seconds
    spins = 0
    while time.monotonic() < deadline:
        spins += 1
    return spins


@runner.task(executor="process")
def extend_then_sleep(seconds: float, marker: str) -> None:
    ctx = current_job()
    assert ctx is not None
    ctx.extend_lease(60)
    Path(marker).write_text("extended")
    time.sleep(seconds)


@runner.task(executor="process")
def retry_later_once(seconds: float) -> int:
    """Asks for a retry after `seconds` on its first attempt."""
    from taskrunner import RetryLater

    ctx = current_job()
    assert ctx is not None
    if ctx.attempt == 1:
        raise RetryLater(seconds)
    return ctx.attempt


@runner.task(executor="process")
def give_up(reason: str) -> None:
    from taskrunner import PermanentFailure

    raise PermanentFailure(reason)


@runner.task(executor="process")
def request_ids() -> list[str | None]:
    """The running job's request id, as the context and as current_request_id() see it."""
    from taskrunner import current_request_id

    ctx = current_job()
    assert ctx is not None
    return [ctx.request_id, current_request_id()]
