"""Supervised background work: a loop that raises is logged and restarted with a backoff
that grows and is bounded; it never dies silently, and the worker keeps its duties."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
import pytest
from worker_helpers import Rescuer, background_worker, row

from taskrunner import TaskRunner
from taskrunner.errors import ConnectError
from taskrunner.queue import JobQueue, Listener, NewJob
from taskrunner.runner import supervise as supervision
from taskrunner.runner.leases import LeaseKeeper


def test_the_restart_delay_doubles_with_each_failure_and_stops_at_its_ceiling():
    delays = [supervision.restart_delay(n, first=0.5, ceiling=30.0) for n in range(1, 12)]

    for n, delay in enumerate(delays, start=1):
        base = min(30.0, 0.5 * 2 ** (n - 1))
        assert base <= delay <= base * 1.2


async def test_a_supervised_loop_that_raises_is_logged_and_started_again(
    caplog: pytest.LogCaptureFixture,
):
    calls: list[int] = []

    async def body() -> None:
        calls.append(len(calls))
        if len(calls) < 3:
            raise RuntimeError(f"failure {len(calls)}")

    with caplog.at_level(logging.WARNING, logger="taskrunner"):
        await asyncio.wait_for(
            supervision.supervise("test loop", body, first_delay=0.01, max_delay=0.02), 5
        )

    assert calls == [0, 1, 2]
    failures = [r for r in caplog.records if r.getMessage().startswith("test loop failed")]
    assert len(failures) == 2
    assert "RuntimeError: failure 1" in failures[0].getMessage()
    assert failures[0].exc_info is not None  # not a database error: the traceback too


async def test_a_supervised_loop_ends_when_cancelled():
    started = asyncio.Event()

    async def body() -> None:
        started.set()
        await asyncio.sleep(60)

    task = supervision.start_supervised("endless", body)
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


async def test_a_rescue_that_raises_is_restarted_and_rescues_later(
    tr: TaskRunner, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    original = JobQueue.rescue_expired
    calls: list[int] = []

    async def first_call_fails(self: JobQueue, **kwargs: Any) -> list[tuple[int, str]]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the rescue")
        return await original(self, **kwargs)

    monkeypatch.setattr(JobQueue, "rescue_expired", first_call_fails)

    @tr.task
    async def quick() -> int:
        return 1

    await tr.job_queue.enqueue(NewJob(task=quick.name))
    (dead,) = await tr.job_queue.claim([quick.name], limit=1, owner="dead", lease=0.1)

    with caplog.at_level(logging.WARNING, logger="taskrunner"):
        async with background_worker(tr, rescue_interval=0.1, poll_interval=0.05):
            assert await tr.result(dead.id, timeout=15) == 1

    assert any(r.getMessage().startswith("rescue failed (RuntimeError") for r in caplog.records)
    assert (await row(tr, dead.id)).attempts == 2


async def test_listening_on_a_closed_connection_raises_a_connect_error(tr: TaskRunner, pg_dsn: str):
    conn = await asyncpg.connect(pg_dsn)
    await conn.close()
    listener = Listener(conn, {tr.job_queue.jobs_channel: lambda _payload: None})

    with pytest.raises(ConnectError):
        await listener.start()


async def test_lease_renewal_that_raises_is_restarted_and_keeps_the_lease(
    tr: TaskRunner, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    original = LeaseKeeper._interval
    calls: list[int] = []

    def first_call_fails(self: LeaseKeeper) -> float:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the renewal loop")
        return original(self)

    monkeypatch.setattr(LeaseKeeper, "_interval", first_call_fails)

    @tr.task(lease=1.5)
    async def longer_than_its_lease() -> int:
        await asyncio.sleep(3)
        return 1

    job = await longer_than_its_lease.enqueue()
    with caplog.at_level(logging.ERROR, logger="taskrunner"), Rescuer(tr.target, tr.schema):
        async with background_worker(tr, concurrency=2):
            assert await tr.result(job.id, timeout=15) == 1

    assert (await row(tr, job.id)).attempts == 1  # never rescued: the lease was renewed
    assert any(r.getMessage().startswith("lease renewal failed") for r in caplog.records)
