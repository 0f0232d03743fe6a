"""An app for worker processes of the queue-control tests.

`python -m taskrunner worker tests.acceptance.apps.queues_app:runner` with
$TASKRUNNER_DSN, $TR_TEST_SCHEMA and $TR_EVENTS_DIR set. Every execution appends a
"start" line and, when it returns, an "end" line (JSON, wall-clock time) to a file of
its process in $TR_EVENTS_DIR, so a test sees every start and end of every worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from taskrunner import TaskRunner, current_job

runner = TaskRunner(schema=os.environ.get("TR_TEST_SCHEMA", "taskrunner"))


def _record(event: str, seq: int) -> None:
    job = current_job()
    line = json.dumps(
        {
            "event": event,
            "seq": seq,
            "job": job.job_id,
            "queue": job.queue,
            "pid": os.getpid(),
            "at": time.time(),
        }
    )
    path = Path(os.environ["TR_EVENTS_DIR"]) / f"{os.getpid()}.jsonl"
    with path.open("a") as events:
        events.write(line + "\n")


@runner.task(name="limits.record", lease=3.0, max_attempts=10)
async def record(seq: int, hold: float, first_only: bool = False) -> None:
    _record("start", seq)
    # first_only: hold on the first attempt only (a job whose worker dies mid-run).
    await asyncio.sleep(0.0 if first_only and current_job().attempt > 1 else hold)
    _record("end", seq)
