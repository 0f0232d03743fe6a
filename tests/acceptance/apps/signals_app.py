"""An app for worker processes started by the acceptance tests.

`python -m taskrunner worker tests.acceptance.apps.signals_app:runner` with
$TASKRUNNER_DSN and $TR_TEST_SCHEMA set. Handlers leave marker files in `marker_dir`:
"<job id>.started.<attempt>" and "<job id>.finished.<attempt>", each holding the pid.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import tenacity

from taskrunner import Retry, TaskRunner, current_job

runner = TaskRunner(schema=os.environ.get("TR_TEST_SCHEMA", "taskrunner"))


def mark(marker_dir: str, event: str) -> None:
    ctx = current_job()
    assert ctx is not None
    # Written aside and renamed, so that a test that sees the file sees its pid too (a
    # worker killed right after it appeared left it empty).
    final = Path(marker_dir, f"{ctx.job_id}.{event}.{ctx.attempt}")
    partial = final.with_name(f".{final.name}.partial")
    partial.write_text(str(os.getpid()))
    partial.replace(final)


@runner.task(
    name="acceptance.hold",
    lease=1.0,
    retry=Retry(max_attempts=3, wait=tenacity.wait_fixed(0.05)),
)
async def hold(marker_dir: str, first_seconds: float, later_seconds: float) -> int:
    """Sleeps `first_seconds` on the first attempt and `later_seconds` on later ones."""
    ctx = current_job()
    assert ctx is not None
    mark(marker_dir, "started")
    await asyncio.sleep(first_seconds if ctx.attempt == 1 else later_seconds)
    mark(marker_dir, "finished")
    return ctx.attempt


@runner.task(
    name="acceptance.hold_cut_off",
    lease=4.0,
    retry=Retry(max_attempts=3, wait=tenacity.wait_fixed(0.05)),
)
async def hold_cut_off(marker_dir: str, first_seconds: float, later_seconds: float) -> int:
    """`hold` with a 4 s lease: cut off from its database, a worker stops a handler 3 s
    after its last renewal (self-fencing), so a first attempt of 1 s still finishes."""
    return await hold.func(marker_dir, first_seconds, later_seconds)
