"""The step task of the workflow properties, and a worker process for the one with
SIGKILLs: `python -m tests.properties.workflow_app` with $TASKRUNNER_DSN and
$TR_TEST_SCHEMA set (the repository root importable).

Every attempt of a step appends lines to a history file (one `write` with O_APPEND
each, so lines of concurrent processes never mix): `start` with what it received,
then `ok` or `fail`. An attempt killed with its process leaves a `start` alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import tenacity

from taskrunner import PermanentFailure, Retry, TaskRunner, current_job

STEP = "wfprop.step"
LEASE = 1.0  # short: a killed worker's steps are rescued soon
# Attempts a step may use: one failure of its own (transient) and one per kill of the
# worker running it (at most MAX_KILLS) still leave it one to succeed.
MAX_KILLS = 2
MAX_ATTEMPTS = 2 + MAX_KILLS
OK, TRANSIENT, PERMANENT = "ok", "transient", "permanent"


def record(history: str, event: str, label: int, received: Any = None) -> None:
    ctx = current_job()
    assert ctx is not None
    line = json.dumps(
        {
            "event": event,
            "label": label,
            "job": ctx.job_id,
            "attempt": ctx.attempt,
            "received": received,
            "t": time.time(),
            "pid": os.getpid(),
        }
    )
    fd = os.open(history, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def first_failure(history: str, label: int) -> bool:
    """True once per step: a transient step fails its first attempt that gets here,
    whatever attempt number kills have brought it to."""
    marker = f"{history}.{label}.failed"
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return False
    return True


async def step(
    received: Any = None, *, label: int, behaviour: str, pause_ms: int, history: str
) -> int:
    """A workflow step: returns its label, which is what its dependants receive."""
    record(history, "start", label, received)
    await asyncio.sleep(pause_ms / 1000)
    if behaviour == PERMANENT:
        record(history, "fail", label)
        raise PermanentFailure(f"step {label} fails for good")
    if behaviour == TRANSIENT and first_failure(history, label):
        record(history, "fail", label)
        raise RuntimeError(f"step {label} fails once")
    record(history, "ok", label)
    return label


def register(runner: TaskRunner) -> Any:
    return runner.task(
        name=STEP,
        lease=LEASE,
        retry=Retry(max_attempts=MAX_ATTEMPTS, wait=tenacity.wait_fixed(0)),
    )(step)


def read_history(history: str) -> list[dict[str, Any]]:
    path = Path(history)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


runner = TaskRunner(schema=os.environ.get("TR_TEST_SCHEMA", "taskrunner"))
register(runner)


async def main(concurrency: int) -> None:
    await runner.run_worker(concurrency=concurrency, poll_interval=0.1, rescue_interval=0.2)


if __name__ == "__main__":
    print("worker starting", flush=True)
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 4))
