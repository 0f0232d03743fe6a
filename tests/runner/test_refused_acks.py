"""Outcomes the database refuses: one bad result or error text fails only its own job,
with a clear last_error, and every other outcome of its batch lands; the worker never
stalls on it. A lost ack connection is retried on a new one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from worker_helpers import run_until_idle

from taskrunner import JobStatus, TaskRunner
from taskrunner.queue import AckResult, JobRow, NewJob
from taskrunner.runner.acks import AckWriter
from taskrunner.runner.leases import LeaseKeeper

NUL_RESULT = b'"a\\u0000b"'  # JSON PostgreSQL's jsonb refuses


async def test_a_result_the_database_cannot_store_fails_that_job_and_the_rest_of_its_batch_lands(
    tr: TaskRunner,
):
    @tr.task
    async def bad() -> str:
        return "a\x00b"

    @tr.task
    async def good(value: int) -> int:
        return value

    bad_job = await bad.enqueue()
    good_jobs = [await good.enqueue(i) for i in range(5)]
    await run_until_idle(tr, timeout=20, concurrency=8)

    failed = await tr.get_job(bad_job.id)
    assert failed is not None
    assert failed.status is JobStatus.FAILED
    assert failed.last_error is not None
    assert failed.last_error.startswith("result could not be stored: ")
    assert "Unicode" in failed.last_error
    assert [await tr.result(job.id) for job in good_jobs] == list(range(5))


async def test_an_error_text_with_a_nul_character_is_stored_with_the_nul_spelled_out(
    tr: TaskRunner,
):
    @tr.task(max_attempts=1)
    async def nul_error() -> None:
        raise ValueError("a\x00b")

    job = await nul_error.enqueue()
    await run_until_idle(tr, timeout=20)

    failed = await tr.get_job(job.id)
    assert failed is not None
    assert failed.status is JobStatus.FAILED
    assert failed.last_error is not None
    assert failed.last_error.startswith("ValueError: a\\x00b")


# ---- the ack writer on its own -----------------------------------------------------


@pytest.fixture
async def writer(tr: TaskRunner) -> AsyncIterator[AckWriter]:
    keeper = LeaseKeeper(
        tr.target,
        tr.schema,
        on_cancel_requested=lambda _job_id: None,
        on_lost=lambda _lease: None,
        owner_loop=asyncio.get_running_loop(),
    )
    written: list[AckResult] = []
    ack_writer = AckWriter(tr.target, tr.schema, keeper, written.append)
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


async def test_a_refused_batch_is_split_until_the_bad_outcome_is_alone(
    tr: TaskRunner, writer: AckWriter
):
    jobs = await claimed(tr, 20)
    for i, job in enumerate(jobs):
        writer.complete(job, job.lease, NUL_RESULT if i == 13 else b"%d" % i)

    assert await writer.wait_empty(10)

    expected = ["succeeded"] * 20
    expected[13] = "failed"
    assert await statuses(tr, jobs) == expected


async def test_a_failure_the_database_cannot_store_is_written_without_its_retry(
    tr: TaskRunner, writer: AckWriter
):
    (job,) = await claimed(tr, 1)
    writer.fail(job, job.lease, "boom", retry_in=1e15)  # a retry time out of range

    assert await writer.wait_empty(10)

    row = await tr.job_queue.get(job.id)
    assert row is not None
    assert row.status == "failed"
    assert row.last_error is not None
    assert row.last_error.startswith("error could not be stored: timestamp out of range")
    assert row.last_error.endswith("The attempt failed with: boom")


async def test_outcomes_land_on_a_new_connection_after_the_ack_connection_was_lost(
    tr: TaskRunner, writer: AckWriter
):
    first, second = await claimed(tr, 2)
    writer.complete(first, first.lease, b"1")
    assert await writer.wait_empty(10)
    conn = writer.connection
    assert conn is not None
    await tr.job_queue.db.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())

    writer.complete(second, second.lease, b"2")

    assert await writer.wait_empty(10)
    assert await statuses(tr, [first, second]) == ["succeeded", "succeeded"]
