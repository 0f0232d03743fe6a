"""Stopping a worker: running jobs finish within the shutdown timeout, queued jobs stay
queued, and what cannot finish in time is handed back to the queue, not failed."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import process_tasks
import pytest
import tenacity
from worker_helpers import (
    background_worker,
    endless_task,
    eventually,
    row,
    run_until_idle,
)

from taskrunner import Retry, TaskRunner, current_job


async def test_a_stop_request_lets_the_running_job_finish_and_leaves_queued_jobs_queued(
    tr: TaskRunner,
):
    started = asyncio.Event()
    finished: list[int] = []

    @tr.task
    async def work(i: int) -> int:
        started.set()
        await asyncio.sleep(0.5)
        finished.append(i)
        return i

    first = await work.enqueue(1)
    rest = [await work.enqueue(i) for i in (2, 3, 4)]

    async with background_worker(tr, concurrency=1, shutdown_timeout=10.0) as bg:
        await asyncio.wait_for(started.wait(), 10)
        stop_asked = time.monotonic()
        await bg.stop()
        stopped_after = time.monotonic() - stop_asked

    assert finished == [1]
    assert stopped_after < 5
    done = await row(tr, first.id)
    assert (done.status, done.attempts) == ("succeeded", 1)
    for job in rest:
        left = await row(tr, job.id)
        assert (left.status, left.attempts, left.lease_id) == ("queued", 0, None)


async def test_a_job_still_running_at_the_shutdown_timeout_is_cancelled_and_handed_back(
    tr: TaskRunner,
):
    endless = endless_task(tr)
    started, cancelled = endless.started, endless.cancelled

    job = await endless.task.enqueue()

    async with background_worker(tr, concurrency=1, shutdown_timeout=0.3) as bg:
        await asyncio.wait_for(started.wait(), 10)
        stop_asked = time.monotonic()
        await bg.stop(timeout=10)
        stopped_after = time.monotonic() - stop_asked

    assert cancelled.is_set()
    assert stopped_after < 3
    handed_back = await row(tr, job.id)
    assert handed_back.status == "queued"
    assert handed_back.finished_at is None
    assert handed_back.lease_id is None
    assert handed_back.lease_owner is None
    assert handed_back.attempts == 0  # a hand-back gives the claim's attempt back


async def test_a_handed_back_job_runs_again_on_the_next_worker(tr: TaskRunner):
    started = asyncio.Event()
    runs: list[int] = []

    @tr.task
    async def once_slow() -> int:
        runs.append(len(runs) + 1)
        started.set()
        if len(runs) == 1:
            await asyncio.sleep(60)
        return len(runs)

    job = await once_slow.enqueue()
    async with background_worker(tr, concurrency=1, shutdown_timeout=0.2) as bg:
        await asyncio.wait_for(started.wait(), 10)
        await bg.stop()

    async with background_worker(tr, concurrency=1):
        assert await tr.result(job.id, timeout=10) == 2
    assert (await row(tr, job.id)).attempts == 1  # the handed-back run did not count


async def test_a_second_stop_request_cancels_running_jobs_without_waiting_the_timeout(
    tr: TaskRunner,
):
    started = asyncio.Event()

    @tr.task
    async def endless() -> None:
        started.set()
        await asyncio.sleep(60)

    job = await endless.enqueue()
    async with background_worker(tr, concurrency=1, shutdown_timeout=30.0) as bg:
        await asyncio.wait_for(started.wait(), 10)
        stop_asked = time.monotonic()
        bg.worker.request_stop()
        await asyncio.sleep(0.2)
        bg.worker.request_stop()
        await bg.stop(timeout=10)
        stopped_after = time.monotonic() - stop_asked

    assert stopped_after < 5
    assert (await row(tr, job.id)).status == "queued"


async def test_a_process_job_still_running_at_the_shutdown_timeout_is_killed_and_handed_back(
    tr: TaskRunner, tmp_path: Path
):
    sleeper = tr.task(executor="process")(process_tasks.sleep_with_pid.func)
    pid_file = tmp_path / "pid"
    job = await sleeper.enqueue(str(pid_file), 3.5)

    async with background_worker(
        tr, concurrency=1, process_pool_size=1, shutdown_timeout=0.3
    ) as bg:
        await eventually(pid_file.exists, timeout=15, message="child started")
        stop_asked = time.monotonic()
        await bg.stop(timeout=20)
        stopped_after = time.monotonic() - stop_asked

    pid = int(pid_file.read_text())
    assert (await row(tr, job.id)).status == "queued"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert stopped_after < 2.5, f"shutdown took {stopped_after:.1f}s"


async def test_a_job_handed_back_at_shutdown_again_and_again_keeps_its_attempts_for_real_failures(
    tr: TaskRunner,
):
    seen: list[tuple[int, int]] = []  # (attempt, max_attempts) as each run saw them
    started = asyncio.Event()

    @tr.task(retry=Retry(max_attempts=2, wait=tenacity.wait_fixed(0)))
    async def interrupted_then_failing() -> None:
        ctx = current_job()
        assert ctx is not None
        seen.append((ctx.attempt, ctx.max_attempts))
        started.set()
        if len(seen) <= 3:
            await asyncio.sleep(60)  # still running at shutdown: handed back
        raise RuntimeError("boom")

    job = await interrupted_then_failing.enqueue()
    for _ in range(3):
        started.clear()
        async with background_worker(tr, concurrency=1, shutdown_timeout=0.1) as bg:
            await asyncio.wait_for(started.wait(), 10)
            await bg.stop()
        assert (await row(tr, job.id)).attempts == 0
    await run_until_idle(tr)

    assert seen == [(1, 2), (1, 2), (1, 2), (1, 2), (2, 2)]  # never "attempt 4 of 2"
    failed = await row(tr, job.id)
    assert (failed.status, failed.attempts) == ("failed", 2)
    assert failed.last_error is not None
    assert "boom" in failed.last_error
