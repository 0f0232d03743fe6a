"""Leases: renewed while a handler runs (even one that blocks the event loop), extended by
hand, and lost by a dead worker so the job runs again elsewhere."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from pathlib import Path

import process_tasks
import pytest
from worker_helpers import (
    Rescuer,
    background_worker,
    db_now,
    endless_task,
    eventually,
    open_runner,
    row,
    run_until_idle,
)

from taskrunner import JobStatus, TaskRunner, current_job
from taskrunner.db import ResolvedDsn
from taskrunner.queue import JobQueue


async def test_a_lease_is_renewed_while_a_handler_runs_longer_than_it(pg_dsn: str, schema: str):
    runs: list[int] = []
    rescued: list[tuple[int, str]] = []
    async with open_runner(pg_dsn, schema) as first, open_runner(pg_dsn, schema) as second:
        for runner in (first, second):

            async def long_job() -> str:
                runs.append(1)
                await asyncio.sleep(2.5)
                return "done"

            runner.task(name="long", lease=1.0)(long_job)

        job = await first.enqueue("long")
        async with background_worker(first, rescue_interval=0.2):
            await eventually(lambda: runs == [1], message="first worker started the job")
            # A second worker rescues expired leases every 0.1 s and would run the job
            # again; the test rescues too, as often as it can.
            async with background_worker(second, rescue_interval=0.1):
                waiting = asyncio.ensure_future(first.wait(job.id, timeout=15))
                while not waiting.done():
                    rescued.extend(await first.job_queue.rescue_expired())
                    await asyncio.sleep(0.05)
                done = await waiting

    assert rescued == []
    assert runs == [1]
    assert (done.status, done.attempts, done.result) == (JobStatus.SUCCEEDED, 1, "done")


async def test_an_async_handler_that_blocks_the_event_loop_keeps_its_lease(
    tr: TaskRunner, target: ResolvedDsn
):
    runs: list[int] = []

    @tr.task(lease=1.0)
    async def blocker() -> str:
        runs.append(1)
        time.sleep(3)  # blocks the worker's event loop on purpose  # noqa: ASYNC251
        return "unblocked"

    job = await blocker.enqueue()
    with Rescuer(target, tr.schema, interval=0.1) as rescuer:
        async with background_worker(tr, rescue_interval=0.2):
            done = await tr.wait(job.id, timeout=15)

    assert rescuer.errors == []
    assert rescuer.calls >= 20, "the rescuer kept trying while the loop was blocked"
    assert rescuer.rescued == []
    assert runs == [1]
    assert (done.status, done.attempts, done.result) == (JobStatus.SUCCEEDED, 1, "unblocked")


async def test_extend_lease_moves_the_lease_expiry_of_the_running_job(tr: TaskRunner):
    extended = asyncio.Event()
    release = asyncio.Event()

    @tr.task(lease=2.0)
    async def needs_time() -> None:
        ctx = current_job()
        assert ctx is not None
        await ctx.extend_lease(60)
        extended.set()
        await release.wait()

    job = await needs_time.enqueue()
    async with background_worker(tr):
        await asyncio.wait_for(extended.wait(), 10)
        held = await row(tr, job.id)
        now = await db_now(tr)
        await asyncio.sleep(0.8)  # several renewals of the old 2 s lease would have run
        later = await row(tr, job.id)
        release.set()
        await tr.wait(job.id, timeout=10)

    assert held.lease_expires_at is not None
    assert later.lease_expires_at is not None
    assert held.lease_expires_at - now > timedelta(seconds=55)
    assert later.lease_expires_at - now > timedelta(seconds=55), "renewal kept the new length"


async def test_extend_lease_works_from_a_thread_task(tr: TaskRunner):
    extended = asyncio.Event()
    loop = asyncio.get_running_loop()

    @tr.task(lease=2.0)
    def needs_time() -> None:
        ctx = current_job()
        assert ctx is not None
        ctx.extend_lease(60).wait(5)
        loop.call_soon_threadsafe(extended.set)
        time.sleep(0.5)

    job = await needs_time.enqueue()
    async with background_worker(tr):
        await asyncio.wait_for(extended.wait(), 10)
        held = await row(tr, job.id)
        now = await db_now(tr)
        await tr.wait(job.id, timeout=10)

    assert held.lease_expires_at is not None
    assert held.lease_expires_at - now > timedelta(seconds=55)


async def test_extend_lease_works_from_a_process_task(tr: TaskRunner, tmp_path: Path):
    task = tr.task(executor="process", lease=2.0)(process_tasks.extend_then_sleep.func)
    marker = tmp_path / "extended"

    job = await task.enqueue(1.5, str(marker))
    async with background_worker(tr, concurrency=1, process_pool_size=1):
        await eventually(marker.exists, timeout=15, message="child extended its lease")

        async def extended() -> bool:
            held = await row(tr, job.id)
            return held.lease_expires_at is not None and (
                held.lease_expires_at - await db_now(tr) > timedelta(seconds=55)
            )

        await eventually(extended, timeout=1.0, message="lease extended to 60 s")
        done = await tr.wait(job.id, timeout=10)
    assert done.status is JobStatus.SUCCEEDED


async def test_a_dead_workers_job_runs_again_elsewhere_once_its_lease_expires(tr: TaskRunner):
    attempts: list[int] = []

    @tr.task
    async def survivor() -> int:
        ctx = current_job()
        assert ctx is not None
        attempts.append(ctx.attempt)
        return ctx.attempt

    job = await survivor.enqueue()
    (claimed,) = await tr.job_queue.claim([survivor.name], limit=1, owner="dead-worker", lease=0.2)
    assert claimed.id == job.id  # claimed and never acked: the worker "died"

    async with background_worker(tr, rescue_interval=0.1):
        done = await tr.wait(job.id, timeout=10)

    assert (done.status, done.attempts, done.result) == (JobStatus.SUCCEEDED, 2, 2)
    assert attempts == [2]


async def test_a_dead_workers_job_on_its_last_attempt_fails_with_a_lease_error(tr: TaskRunner):
    ran: list[int] = []

    @tr.task(max_attempts=1)
    async def one_shot() -> None:
        ran.append(1)

    job = await one_shot.enqueue()
    await tr.job_queue.claim([one_shot.name], limit=1, owner="dead-worker", lease=0.2)

    async with background_worker(tr, rescue_interval=0.1):
        done = await tr.wait(job.id, timeout=10)

    assert (done.status, done.attempts) == (JobStatus.FAILED, 1)
    assert done.last_error is not None
    assert "lease expired" in done.last_error
    assert ran == []


async def test_stop_when_idle_does_not_wait_for_jobs_running_on_other_workers(tr: TaskRunner):
    @tr.task
    async def noop() -> None:
        pass

    job = await noop.enqueue()
    await tr.job_queue.claim([noop.name], limit=1, owner="other-worker", lease=30)

    started = time.monotonic()
    await run_until_idle(tr, timeout=10)
    assert time.monotonic() - started < 5
    assert (await row(tr, job.id)).status == "running"


async def _take_over(tr: TaskRunner, job_id: int, *, claim_as: str | None) -> None:
    """Expire the job's lease and rescue it in one transaction (the worker's renewal waits
    for it); then optionally claim it as another worker, as a rescuer elsewhere would."""
    async with tr.job_queue.db.acquire() as conn, conn.transaction():
        await conn.execute(
            f"UPDATE \"{tr.schema}\".jobs SET lease_expires_at = now() - interval '1 second' "
            "WHERE id = $1",
            job_id,
        )
        rescued = await JobQueue(conn, tr.schema).rescue_expired()
        assert rescued == [(job_id, "queued")]
        if claim_as is not None:
            (claimed,) = await JobQueue(conn, tr.schema).claim(
                list(tr.tasks), limit=1, owner=claim_as, lease=60
            )
            assert claimed.id == job_id


async def test_a_worker_that_loses_a_lease_stops_the_handler_and_acks_nothing(tr: TaskRunner):
    long_job = endless_task(tr, lease=1.0)

    job = await long_job.task.enqueue()
    async with background_worker(tr, rescue_interval=60):
        await asyncio.wait_for(long_job.started.wait(), 10)
        await _take_over(tr, job.id, claim_as="other-worker")
        await asyncio.wait_for(long_job.cancelled.wait(), 5)
        await asyncio.sleep(0.2)
        taken = await row(tr, job.id)

    assert (taken.status, taken.lease_owner, taken.attempts) == ("running", "other-worker", 2)


async def test_a_worker_that_reclaims_its_own_lost_job_never_runs_it_twice_at_once(
    tr: TaskRunner,
):
    spans: dict[int, list[float]] = {}

    @tr.task(lease=1.0)
    async def long_job() -> int:
        ctx = current_job()
        assert ctx is not None
        spans[ctx.attempt] = [time.monotonic()]
        try:
            if ctx.attempt == 1:
                await asyncio.sleep(2)
            return ctx.attempt
        finally:
            spans[ctx.attempt].append(time.monotonic())

    job = await long_job.enqueue()
    async with background_worker(tr, rescue_interval=60, poll_interval=0.02):
        await eventually(lambda: 1 in spans, message="first attempt started")
        await _take_over(tr, job.id, claim_as=None)  # the same worker claims it again
        done = await tr.wait(job.id, timeout=10)
        await eventually(lambda: len(spans.get(1, [])) == 2, message="first attempt ended")

    assert (done.status, done.result) == (JobStatus.SUCCEEDED, 2)
    first_end = spans[1][1]
    second_start = spans[2][0]
    assert first_end <= second_start, (
        f"attempt 1 was still running {first_end - second_start:.2f}s into attempt 2"
    )


async def test_every_log_record_about_a_lost_lease_names_the_job_task_and_request_id(
    tr: TaskRunner, caplog: pytest.LogCaptureFixture
):
    long_job = endless_task(tr, lease=1.0)

    job = await long_job.task.enqueue(request_id="req-lost")
    caplog.set_level(logging.DEBUG, logger="taskrunner")
    async with background_worker(tr, rescue_interval=60):
        await asyncio.wait_for(long_job.started.wait(), 10)
        await _take_over(tr, job.id, claim_as="other-worker")
        await asyncio.wait_for(long_job.cancelled.wait(), 5)

    about_job = [r for r in caplog.records if getattr(r, "job_id", None) == job.id]
    assert any("lost" in r.getMessage() for r in about_job)
    incomplete = [
        r.getMessage()
        for r in about_job
        if getattr(r, "task", None) != long_job.task.name
        or getattr(r, "request_id", None) != "req-lost"
    ]
    assert incomplete == []
