"""An app for worker processes running workflow steps (tests/acceptance).

`python -m taskrunner worker tests.acceptance.apps.workflow_app:runner` with
$TASKRUNNER_DSN and $TR_TEST_SCHEMA set. Handlers leave marker files in `marker_dir`:
"<job id>.<event>.<attempt>", each holding the pid (written aside and renamed).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from taskrunner import TaskRunner, current_job

runner = TaskRunner(schema=os.environ.get("TR_TEST_SCHEMA", "taskrunner"))


def mark(marker_dir: str, event: str) -> None:
    ctx = current_job()
    assert ctx is not None
    final = Path(marker_dir, f"{ctx.job_id}.{event}.{ctx.attempt}")
    partial = final.with_name(f".{final.name}.partial")
    partial.write_text(str(os.getpid()))
    partial.replace(final)


@runner.task(name="acceptance.wf_part", lease=1.0, max_attempts=3)
async def part(marker_dir: str, n: int, hang: bool) -> int:
    """n * 10; with `hang`, its first attempt holds on until its worker is killed."""
    ctx = current_job()
    assert ctx is not None
    mark(marker_dir, "started")
    if hang and ctx.attempt == 1:
        await asyncio.sleep(60)
    mark(marker_dir, "finished")
    return n * 10


@runner.task(name="acceptance.wf_body", lease=1.0, max_attempts=3)
async def body(values: list[int], marker_dir: str) -> list[int]:
    mark(marker_dir, "body")
    return values
