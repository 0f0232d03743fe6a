"""An app for the frozen-worker test: `python -m taskrunner worker
tests.acceptance.apps.fencing_app:runner` with $TASKRUNNER_DSN and $TR_TEST_SCHEMA set.

Its handler records what it does in a history file shared by every worker, one line per
event, each one `os.write` on an O_APPEND descriptor: `kind pid attempt monotonic`, kind
S (started), W (a step of work done), D (done) or C (cancelled). time.monotonic() is one
clock for every process of the machine, so the lines of different workers compare.
"""

from __future__ import annotations

import asyncio
import os
import time

from taskrunner import TaskRunner, current_job

runner = TaskRunner(schema=os.environ.get("TR_TEST_SCHEMA", "taskrunner"))

LEASE = 2.0
STEP = 0.05


def record(history: str, kind: str, attempt: int) -> None:
    fd = os.open(history, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, f"{kind} {os.getpid()} {attempt} {time.monotonic():.6f}\n".encode())
    finally:
        os.close(fd)


@runner.task(name="acceptance.steps", lease=LEASE, max_attempts=5)
async def steps(history: str, first_seconds: float, later_seconds: float) -> int:
    """Works in steps of STEP seconds, for `first_seconds` on the first attempt and
    `later_seconds` on later ones; returns its pid."""
    ctx = current_job()
    assert ctx is not None
    record(history, "S", ctx.attempt)
    seconds = first_seconds if ctx.attempt == 1 else later_seconds
    try:
        for _ in range(round(seconds / STEP)):
            await asyncio.sleep(STEP)
            record(history, "W", ctx.attempt)
    except asyncio.CancelledError:
        record(history, "C", ctx.attempt)
        raise
    record(history, "D", ctx.attempt)
    return os.getpid()


@runner.task(name="acceptance.process_steps", lease=LEASE, max_attempts=5, executor="process")
def process_steps(history: str, first_seconds: float, later_seconds: float) -> int:
    """`steps` in a child process (its lines carry the child's pid)."""
    ctx = current_job()
    assert ctx is not None
    record(history, "S", ctx.attempt)
    seconds = first_seconds if ctx.attempt == 1 else later_seconds
    for _ in range(round(seconds / STEP)):
        time.sleep(STEP)
        record(history, "W", ctx.attempt)
    record(history, "D", ctx.attempt)
    return os.getpid()
