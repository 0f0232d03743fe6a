"""Self-fencing: a worker whose lease renewals do not get through stops that job's handler
before the lease can run out (async: cancelled, process: its child killed, thread: its
outcome never written), so the job never runs on two workers at once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import process_tasks
from worker_helpers import background_worker, endless_task, eventually, row

from taskrunner import JobStatus, TaskRunner
from taskrunner.queue import NewJob
from taskrunner.runner.acks import AckWriter
from taskrunner.runner.leases import LeaseKeeper

LEASE = 2.0


@contextlib.asynccontextmanager
async def renewals_blocked(pg_dsn: str, runner: TaskRunner, job_id: int) -> AsyncIterator[float]:
    """Hold the job's row locked, so that no renewal of its lease gets through (as on a
    connection that stopped answering). Yields the time.monotonic() at which the lease,
    as the database has it, runs out."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        async with conn.transaction():
            left = await conn.fetchval(
                f"SELECT extract(epoch FROM lease_expires_at - clock_timestamp())::float8 "
                f'FROM "{runner.schema}".jobs WHERE id = $1 FOR UPDATE',
                job_id,
            )
            yield time.monotonic() + left
    finally:
        await conn.close()


async def test_an_async_handler_is_cancelled_before_its_lease_runs_out_when_renewals_fail(
    tr: TaskRunner, pg_dsn: str
):
    long_job = endless_task(tr, lease=LEASE)

    job = await long_job.task.enqueue()
    async with background_worker(tr, rescue_interval=60) as bg:
        await asyncio.wait_for(long_job.started.wait(), 10)
        async with renewals_blocked(pg_dsn, tr, job.id) as runs_out:
            await asyncio.wait_for(long_job.cancelled.wait(), runs_out - time.monotonic())
            assert time.monotonic() < runs_out
        await eventually(lambda: not bg.worker.running, message="the attempt ended")

    stale = await row(tr, job.id)
    assert (stale.status, stale.attempts, stale.last_error) == ("running", 1, None)


async def test_a_process_handlers_child_is_killed_before_its_lease_runs_out_when_renewals_fail(
    tr: TaskRunner, pg_dsn: str, tmp_path: Path
):
    sleeper = tr.task(executor="process", lease=LEASE)(process_tasks.sleep_with_pid.func)
    pid_file = tmp_path / "pid"
    job = await sleeper.enqueue(str(pid_file), 60.0)

    async with background_worker(tr, rescue_interval=60, process_pool_size=1):
        await eventually(pid_file.exists, timeout=15, message="child started")
        child = int(pid_file.read_text())
        async with renewals_blocked(pg_dsn, tr, job.id) as runs_out:
            await eventually(
                lambda: _gone(child), timeout=runs_out - time.monotonic(), message="child killed"
            )
            assert time.monotonic() < runs_out

    stale = await row(tr, job.id)
    assert (stale.status, stale.attempts, stale.last_error) == ("running", 1, None)


async def test_a_thread_handler_past_its_fence_keeps_its_slot_and_its_outcome_is_never_written(
    tr: TaskRunner, pg_dsn: str
):
    release = threading.Event()
    started = threading.Event()
    next_started = asyncio.Event()

    @tr.task(lease=LEASE)
    def blocking() -> int:
        started.set()
        release.wait(30)
        return 42

    @tr.task
    async def after() -> None:
        next_started.set()

    job = await blocking.enqueue()
    async with background_worker(tr, concurrency=1, rescue_interval=60) as bg:
        await eventually(started.is_set, message="thread started")
        waiting = await after.enqueue()
        async with renewals_blocked(pg_dsn, tr, job.id) as runs_out:
            await eventually(
                lambda: bg.worker.running[job.id].stop_reason == "lost",
                timeout=runs_out - time.monotonic(),
                message="fenced",
            )
            await asyncio.sleep(max(0.0, runs_out - time.monotonic()))  # past its lease
            assert not next_started.is_set()  # the thread still runs: its slot is taken
        release.set()
        await asyncio.wait_for(next_started.wait(), 10)
        assert (await tr.wait(waiting.id, timeout=10)).status is JobStatus.SUCCEEDED

    stale = await row(tr, job.id)
    assert (stale.status, stale.result) == ("running", None)  # 42 was never written


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_an_outcome_under_a_lease_past_its_fence_time_is_not_sent(tr: TaskRunner):
    keeper = LeaseKeeper(
        tr.target,
        tr.schema,
        on_cancel_requested=lambda _job_id: None,
        on_lost=lambda _lease: None,
        owner_loop=asyncio.get_running_loop(),
    )
    await tr.job_queue.enqueue_many([NewJob(task="t"), NewJob(task="t")])
    stale, fresh = await tr.job_queue.claim(["t"], limit=2, owner="test", lease=60)
    now = time.monotonic()
    keeper.hold_many([(stale.lease, LEASE)], since=now - 10 * LEASE)  # no renewal since
    keeper.hold_many([(fresh.lease, LEASE)], since=now)
    writer = AckWriter(tr.target, tr.schema, keeper, lambda _result: None)
    writer.start()
    try:
        writer.complete(stale, stale.lease, b"1")
        writer.complete(fresh, fresh.lease, b"2")
        assert await writer.wait_empty(10)
    finally:
        await writer.close(5)

    rows = await tr.job_queue.get_many([stale.id, fresh.id])
    assert (rows[stale.id].status, rows[stale.id].result) == ("running", None)
    assert rows[fresh.id].status == "succeeded"
