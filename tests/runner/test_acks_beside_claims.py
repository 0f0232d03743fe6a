"""The ack writer stays out of the way of the worker's claims: while a claim is in flight
it holds its next batch, but never for longer than CLAIM_WAIT, and never at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from worker_helpers import run_until_idle

from taskrunner import TaskRunner
from taskrunner.queue import AckResult, JobRow, NewJob
from taskrunner.runner import acks
from taskrunner.runner.acks import AckWriter
from taskrunner.runner.leases import LeaseKeeper


@pytest.fixture
def no_claim_in_flight() -> asyncio.Event:
    return asyncio.Event()  # clear: a claim is in flight


@pytest.fixture
async def writer(tr: TaskRunner, no_claim_in_flight: asyncio.Event) -> AsyncIterator[AckWriter]:
    keeper = LeaseKeeper(
        tr.target,
        tr.schema,
        on_cancel_requested=lambda _job_id: None,
        on_lost=lambda _lease: None,
        owner_loop=asyncio.get_running_loop(),
    )
    written: list[AckResult] = []
    ack_writer = AckWriter(
        tr.target, tr.schema, keeper, written.append, no_claim_in_flight=no_claim_in_flight
    )
    ack_writer.start()
    yield ack_writer
    await ack_writer.close(5)


async def claimed(tr: TaskRunner, count: int) -> list[JobRow]:
    await tr.job_queue.enqueue_many([NewJob(task="t") for _ in range(count)])
    jobs = await tr.job_queue.claim(["t"], limit=count, owner="test", lease=60)
    assert len(jobs) == count
    return jobs


async def statuses(tr: TaskRunner, jobs: list[JobRow]) -> list[str]:
    rows = await tr.job_queue.get_many([j.id for j in jobs])
    return [rows[j.id].status for j in jobs]


async def test_outcomes_wait_while_a_claim_is_in_flight_and_are_written_once_it_is_back(
    tr: TaskRunner,
    writer: AckWriter,
    no_claim_in_flight: asyncio.Event,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setattr(acks, "CLAIM_WAIT", 30.0)
    jobs = await claimed(tr, 3)
    for job in jobs:
        writer.complete(job, job.lease, b"1")

    assert not await writer.wait_empty(0.3)
    assert await statuses(tr, jobs) == ["running"] * 3

    no_claim_in_flight.set()  # the claim is back
    assert await writer.wait_empty(10)
    assert await statuses(tr, jobs) == ["succeeded"] * 3


async def test_a_claim_that_does_not_return_holds_outcomes_back_no_longer_than_claim_wait(
    tr: TaskRunner, writer: AckWriter
):
    jobs = await claimed(tr, 3)
    for job in jobs:
        writer.complete(job, job.lease, b"1")

    assert await writer.wait_empty(10)  # the claim never comes back: written all the same
    assert await statuses(tr, jobs) == ["succeeded"] * 3


async def test_outcomes_pending_at_shutdown_are_written_without_waiting_for_a_claim(
    tr: TaskRunner, writer: AckWriter, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(acks, "CLAIM_WAIT", 30.0)
    jobs = await claimed(tr, 3)
    for job in jobs:
        writer.complete(job, job.lease, b"1")

    await asyncio.wait_for(writer.close(5), 10)

    assert await statuses(tr, jobs) == ["succeeded"] * 3


async def test_a_worker_draining_a_backlog_writes_every_outcome(tr: TaskRunner):
    @tr.task
    async def noop(i: int) -> int:
        return i

    await tr.enqueue_many(noop, [(i,) for i in range(500)])
    await run_until_idle(tr, timeout=60, concurrency=16)

    rows = await tr.job_queue.db.fetch(
        f"SELECT status::text, count(*) FROM {tr.schema}.jobs GROUP BY 1"
    )
    assert {r[0]: r[1] for r in rows} == {"succeeded": 500}
