"""Claiming ahead (runner/prefetch.py): while short jobs have a backlog, a claim takes a
few jobs beyond the free slots; they wait in the worker, never run beyond the
concurrency, and go back to the queue untouched when the worker stops."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from test_self_fencing import LEASE, renewals_blocked
from worker_helpers import Concurrency, background_worker, eventually, settings

from taskrunner import TaskRunner
from taskrunner.runner.prefetch import LOCAL_WAIT, Prefetch
from taskrunner.runner.tasks import Task
from taskrunner.runner.worker import Worker

CONCURRENCY = 2
AHEAD = 4


async def running_in_db(tr: TaskRunner) -> int:
    count: int = await tr.job_queue.db.fetchval(
        f"SELECT count(*) FROM {tr.schema}.jobs WHERE status = 'running'"
    )
    return count


async def running_is(tr: TaskRunner, expected: int) -> bool:
    return await running_in_db(tr) == expected


def short_then_blocked(
    tr: TaskRunner, peak: Concurrency, gate: asyncio.Event
) -> tuple[Task[..., Any], Task[..., Any]]:
    """Two tasks: `quick` (no-op, sets a short mean) and `blocked` (waits for `gate`)."""

    @tr.task
    async def quick(i: int) -> None:
        with peak.running(-1):
            pass

    @tr.task
    async def blocked(i: int) -> None:
        with peak.running(i):
            await asyncio.wait_for(gate.wait(), 20)

    return quick, blocked


async def test_short_jobs_with_a_backlog_are_claimed_ahead_and_all_run_before_the_worker_idles(
    tr: TaskRunner,
):
    peak = Concurrency()
    held: list[int] = []  # jobs the worker holds a lease of, as each handler starts

    @tr.task
    async def quick(i: int) -> None:
        with peak.running(i):
            held.append(len(worker.running))

    jobs = await tr.enqueue_many(quick, [(i,) for i in range(60)])
    worker = Worker(tr, settings(concurrency=CONCURRENCY, claim_ahead=AHEAD, stop_when_idle=True))

    await asyncio.wait_for(worker.run(), 30)

    assert max(held) > CONCURRENCY  # some were claimed ahead ...
    assert max(held) <= CONCURRENCY + AHEAD
    assert peak.peak <= CONCURRENCY  # ... but never ran beyond the concurrency
    for job in jobs:
        done = await tr.get_job(job.id)
        assert done is not None
        assert (done.status, done.attempts) == ("succeeded", 1)


async def test_jobs_claimed_ahead_are_handed_back_at_shutdown_with_the_attempts_they_had(
    tr: TaskRunner,
):
    peak, gate = Concurrency(), asyncio.Event()
    quick, blocked = short_then_blocked(tr, peak, gate)
    await tr.enqueue_many(quick, [(i,) for i in range(20)], priority=1)  # claimed first
    waiting = await tr.enqueue_many(blocked, [(i,) for i in range(10)])

    async with background_worker(tr, concurrency=CONCURRENCY, claim_ahead=AHEAD) as bg:
        await eventually(lambda: peak.now == CONCURRENCY, message="both slots blocked")
        await eventually(lambda: running_is(tr, CONCURRENCY + AHEAD), message="jobs claimed ahead")
        stopping = asyncio.create_task(bg.stop())
        # Handed back at once, while the running ones still run.
        await eventually(lambda: running_is(tr, CONCURRENCY), message="the hand-back")
        assert peak.now == CONCURRENCY
        gate.set()
        await stopping

    started = set(peak.started) - {-1}
    assert len(started) == CONCURRENCY  # the held ones never ran
    for job in waiting:
        row = await tr.get_job(job.id)
        assert row is not None
        if job.args[0] in started:
            assert (row.status, row.attempts) == ("succeeded", 1)
        else:
            assert (row.status, row.attempts) == ("queued", 0)


async def test_a_job_claimed_ahead_whose_cancel_is_asked_ends_cancelled_without_running(
    tr: TaskRunner,
):
    peak, gate = Concurrency(), asyncio.Event()
    quick, blocked = short_then_blocked(tr, peak, gate)
    await tr.enqueue_many(quick, [(i,) for i in range(20)], priority=1)
    waiting = await tr.enqueue_many(blocked, [(i,) for i in range(10)])

    async with background_worker(tr, concurrency=CONCURRENCY, claim_ahead=AHEAD):
        await eventually(lambda: peak.now == CONCURRENCY, message="both slots blocked")
        await eventually(lambda: running_is(tr, CONCURRENCY + AHEAD), message="jobs claimed ahead")
        rows = await tr.job_queue.get_many([job.id for job in waiting])
        held = next(
            job
            for job in waiting
            if rows[job.id].status == "running" and job.args[0] not in peak.started
        )
        await tr.cancel(held.id)
        ended = await tr.wait(held.id, timeout=10)
        gate.set()

    assert ended.status == "cancelled"
    assert held.args[0] not in peak.started


async def test_a_job_claimed_ahead_whose_renewals_fail_is_dropped_unrun_before_its_lease_ends(
    tr: TaskRunner, pg_dsn: str
):
    peak, gate = Concurrency(), asyncio.Event()
    quick, _ = short_then_blocked(tr, peak, gate)

    @tr.task(lease=LEASE)
    async def blocked_short_lease(i: int) -> None:
        with peak.running(i):
            await asyncio.wait_for(gate.wait(), 20)

    await tr.enqueue_many(quick, [(i,) for i in range(20)], priority=1)
    await tr.enqueue_many(blocked_short_lease, [(i,) for i in range(10)])

    async with background_worker(
        tr, concurrency=CONCURRENCY, claim_ahead=AHEAD, rescue_interval=60
    ) as bg:
        worker = bg.worker
        await eventually(lambda: peak.now == CONCURRENCY, message="both slots blocked")
        await eventually(
            lambda: len(worker.running) == CONCURRENCY + AHEAD, message="jobs claimed ahead"
        )
        held = next(
            e.job
            for e in worker.running.values()
            if e.handle is None and e.job.task == blocked_short_lease.name
        )
        async with renewals_blocked(pg_dsn, tr, held.id) as runs_out:
            await eventually(
                lambda: held.id not in worker.running,
                timeout=runs_out - time.monotonic(),
                message="the held job dropped",
            )
        gate.set()

    assert held.args[0] not in peak.started
    stale = await tr.job_queue.get(held.id)
    assert stale is not None
    assert (stale.status, stale.attempts) == ("running", 1)  # left to the rescue


async def test_a_worker_serving_a_limited_queue_claims_nothing_ahead(tr: TaskRunner):
    held: list[int] = []

    @tr.task
    async def quick(i: int) -> None:
        held.append(len(worker.running))

    await tr.configure_queue("serial", concurrency=1)
    await tr.enqueue_many(quick, [(i,) for i in range(40)])
    await tr.enqueue_many(quick, [(i,) for i in range(5)], queue="serial")
    worker = Worker(tr, settings(concurrency=CONCURRENCY, claim_ahead=AHEAD, stop_when_idle=True))

    await asyncio.wait_for(worker.run(), 30)

    assert len(held) == 45
    assert max(held) <= CONCURRENCY


def test_nothing_is_claimed_ahead_before_a_claim_came_back_full():
    prefetch = Prefetch(concurrency=16, extra=32)
    prefetch.ran(0.001)
    assert prefetch.room() == 0
    prefetch.claimed(asked=16, got=16)
    assert prefetch.room() == 32
    prefetch.claimed(asked=48, got=10)  # the queue ran dry
    assert prefetch.room() == 0


def test_handlers_slower_than_the_local_wait_are_not_claimed_ahead():
    prefetch = Prefetch(concurrency=16, extra=32)
    prefetch.claimed(asked=16, got=16)
    prefetch.ran(LOCAL_WAIT * 2)
    assert prefetch.room() == 0


def test_the_jobs_claimed_ahead_are_what_the_slots_get_through_in_the_local_wait():
    prefetch = Prefetch(concurrency=16, extra=32)
    prefetch.claimed(asked=16, got=16)
    prefetch.ran(LOCAL_WAIT / 4)  # 16 slots x 4 handlers each: 64, capped at 32 ...
    assert prefetch.room() == 32
    prefetch = Prefetch(concurrency=16, extra=32)
    prefetch.claimed(asked=16, got=16)
    prefetch.ran(LOCAL_WAIT / 1.5)  # ... and 16 x 1.5 = 24 (give or take rounding)
    assert prefetch.room() in (23, 24)
