"""Acks: how a claimer ends an attempt (complete, fail, release) and renews its lease."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg
import pytest

from taskrunner.queue import (
    Completion,
    Failure,
    JobQueue,
    JobRow,
    Lease,
    LeaseExtension,
    NewJob,
)


async def db_now(pool: asyncpg.Pool) -> datetime:
    return await pool.fetchval("SELECT now()")


async def running_job(queue: JobQueue, *, max_attempts: int = 5, task: str = "t") -> JobRow:
    await queue.enqueue(NewJob(task=task, max_attempts=max_attempts))
    (job,) = await queue.claim([task], limit=1, owner="w")
    return job


async def stored(queue: JobQueue, job_id: int) -> JobRow:
    job = await queue.get(job_id)
    assert job is not None
    return job


def holds_no_lease(job: JobRow) -> bool:
    return job.lease_id is None and job.lease_owner is None and job.lease_expires_at is None


# ---- complete ----------------------------------------------------------------------


async def test_completing_jobs_stores_their_results_and_finishes_them_as_succeeded(
    queue: JobQueue, pool: asyncpg.Pool
):
    await queue.enqueue_many([NewJob(task="t"), NewJob(task="t")])
    a, b = await queue.claim(["t"], limit=2, owner="w")

    ack = await queue.complete_many(
        [Completion(lease=a.lease, result=b'{"total": 42}'), Completion(lease=b.lease)]
    )

    assert ack.applied == {a.id: "succeeded", b.id: "succeeded"}
    assert ack.lost == []
    done_a, done_b = await stored(queue, a.id), await stored(queue, b.id)
    assert done_a.result == b'{"total": 42}'
    assert done_b.result is None
    for job in (done_a, done_b):
        assert job.status == "succeeded"
        assert holds_no_lease(job)
        assert job.finished_at is not None
        assert job.finished_at <= await db_now(pool)
        assert job.attempts == 1


async def test_completing_a_job_whose_cancel_came_too_late_keeps_it_succeeded_with_its_result(
    queue: JobQueue,
):
    job = await running_job(queue)
    assert await queue.cancel(job.id)

    ack = await queue.complete_many([Completion(lease=job.lease, result=b"1")])

    assert ack.applied == {job.id: "succeeded"}
    done = await stored(queue, job.id)
    assert (done.status, done.result) == ("succeeded", b"1")
    assert done.finished_at is not None
    assert holds_no_lease(done)


async def test_a_second_completion_of_the_same_claim_is_lost_and_changes_nothing(
    queue: JobQueue,
):
    job = await running_job(queue)
    await queue.complete_many([Completion(lease=job.lease, result=b"1")])
    before = await stored(queue, job.id)

    ack = await queue.complete_many([Completion(lease=job.lease, result=b"2")])

    assert ack.applied == {}
    assert ack.lost == [job.lease]
    assert await stored(queue, job.id) == before


async def test_a_batch_of_acks_applies_the_held_leases_and_lists_the_others_as_lost(
    queue: JobQueue,
):
    job = await running_job(queue)
    other = await running_job(queue)
    stranger = Lease(job_id=other.id, lease_id=other.lease.lease_id + 1000)
    missing = Lease(job_id=other.id + 1000, lease_id=1)

    ack = await queue.complete_many(
        [Completion(lease=stranger), Completion(lease=job.lease), Completion(lease=missing)]
    )

    assert ack.applied == {job.id: "succeeded"}
    assert ack.lost == [stranger, missing]
    assert (await stored(queue, other.id)).status == "running"


async def test_acks_of_nothing_do_nothing(queue: JobQueue):
    for ack in (
        await queue.complete_many([]),
        await queue.fail_many([]),
        await queue.release_many([]),
    ):
        assert ack.applied == {}
        assert ack.lost == []
    renew = await queue.extend_leases([])
    assert (renew.renewed, renew.cancel_requested, renew.lost) == ([], [], [])


# ---- fail --------------------------------------------------------------------------


async def test_a_failure_with_a_retry_delay_queues_the_job_again_for_later_keeping_the_error(
    queue: JobQueue, pool: asyncpg.Pool
):
    job = await running_job(queue)
    before = await db_now(pool)

    ack = await queue.fail_many([Failure(lease=job.lease, error="boom", retry_in=60)])

    after = await db_now(pool)
    assert ack.applied == {job.id: "queued"}
    again = await stored(queue, job.id)
    assert again.status == "queued"
    assert again.last_error == "boom"
    assert again.attempts == 1
    assert again.finished_at is None
    assert holds_no_lease(again)
    assert before + timedelta(seconds=60) <= again.run_at <= after + timedelta(seconds=60)
    assert await queue.claim(["t"], limit=1, owner="w") == []  # not before its time


async def test_a_failure_with_a_zero_retry_delay_makes_the_job_claimable_again_at_once(
    queue: JobQueue,
):
    job = await running_job(queue)
    await queue.fail_many([Failure(lease=job.lease, error="boom", retry_in=0)])

    (again,) = await queue.claim(["t"], limit=1, owner="w2")
    assert again.id == job.id
    assert again.attempts == 2
    assert again.lease_id != job.lease_id


async def test_a_failure_without_a_retry_delay_fails_the_job_for_good(queue: JobQueue):
    job = await running_job(queue)

    ack = await queue.fail_many([Failure(lease=job.lease, error="bad input")])

    assert ack.applied == {job.id: "failed"}
    failed = await stored(queue, job.id)
    assert failed.status == "failed"
    assert failed.last_error == "bad input"
    assert failed.finished_at is not None
    assert holds_no_lease(failed)


async def test_a_failure_asking_for_a_retry_after_the_last_attempt_fails_the_job_for_good(
    queue: JobQueue,
):
    await queue.enqueue(NewJob(task="t", max_attempts=2))
    for attempt in (1, 2):
        (job,) = await queue.claim(["t"], limit=1, owner="w")
        assert job.attempts == attempt
        ack = await queue.fail_many([Failure(lease=job.lease, error=f"try {attempt}", retry_in=0)])

    assert ack.applied == {job.id: "failed"}
    failed = await stored(queue, job.id)
    assert failed.status == "failed"
    assert failed.last_error == "try 2"
    assert failed.finished_at is not None


@pytest.mark.parametrize("retry_in", [None, 0.0])
async def test_a_failure_of_a_job_whose_cancel_was_asked_ends_it_cancelled(
    queue: JobQueue, retry_in: float | None
):
    job = await running_job(queue)
    await queue.cancel(job.id)

    ack = await queue.fail_many([Failure(lease=job.lease, error="x", retry_in=retry_in)])

    assert ack.applied == {job.id: "cancelled"}
    assert (await stored(queue, job.id)).finished_at is not None


# ---- release -----------------------------------------------------------------------


async def test_a_released_job_is_queued_again_at_once_with_the_attempts_it_had_before_its_claim(
    queue: JobQueue,
):
    job = await running_job(queue)

    ack = await queue.release_many([job.lease])

    assert ack.applied == {job.id: "queued"}
    released = await stored(queue, job.id)
    assert released.status == "queued"
    assert released.attempts == 0
    assert holds_no_lease(released)
    (again,) = await queue.claim(["t"], limit=1, owner="w2")
    assert again.id == job.id
    assert again.attempts == 1


async def test_a_job_handed_back_more_often_than_its_max_attempts_still_runs_its_attempts(
    queue: JobQueue,
):
    (result,) = await queue.enqueue_many([NewJob(task="t", max_attempts=2)])
    for _ in range(3):
        (handed_back,) = await queue.claim(["t"], limit=1, owner="w")
        await queue.release_many([handed_back.lease])

    (first,) = await queue.claim(["t"], limit=1, owner="w")
    assert (first.id, first.attempts) == (result.job.id, 1)
    await queue.fail_many([Failure(lease=first.lease, error="boom", retry_in=0)])
    (second,) = await queue.claim(["t"], limit=1, owner="w")
    assert second.attempts == 2


async def test_a_queued_job_with_no_attempts_left_is_failed_by_the_claim_and_never_handed_out(
    queue: JobQueue, pool: asyncpg.Pool
):
    (result,) = await queue.enqueue_many([NewJob(task="t", max_attempts=2)])
    await pool.execute(
        f'UPDATE "{queue.schema}".jobs SET attempts = 2 WHERE id = $1', result.job.id
    )

    assert await queue.claim(["t"], limit=5, owner="w") == []

    failed = await stored(queue, result.job.id)
    assert failed.status == "failed"
    assert failed.attempts == 2
    assert failed.finished_at is not None
    assert holds_no_lease(failed)
    assert failed.last_error is not None
    assert "no attempts left" in failed.last_error


async def test_releasing_a_job_whose_cancel_was_asked_ends_it_cancelled(queue: JobQueue):
    job = await running_job(queue)
    await queue.cancel(job.id)

    ack = await queue.release_many([job.lease])

    assert ack.applied == {job.id: "cancelled"}
    assert (await stored(queue, job.id)).finished_at is not None


# ---- lease renewal -----------------------------------------------------------------


async def test_extending_a_held_lease_moves_its_expiry_to_that_many_seconds_from_now(
    queue: JobQueue, pool: asyncpg.Pool
):
    job = await running_job(queue)
    before = await db_now(pool)

    renew = await queue.extend_leases([LeaseExtension(lease=job.lease, seconds=900)])

    after = await db_now(pool)
    assert renew.renewed == [job.id]
    assert renew.lost == []
    assert renew.cancel_requested == []
    expires = (await stored(queue, job.id)).lease_expires_at
    assert expires is not None
    assert before + timedelta(seconds=900) <= expires <= after + timedelta(seconds=900)


async def test_extending_leases_on_a_given_connection_renews_them(
    queue: JobQueue, pool: asyncpg.Pool
):
    job = await running_job(queue)
    async with pool.acquire() as conn:
        renew = await queue.extend_leases(
            [LeaseExtension(lease=job.lease, seconds=10)], connection=conn
        )
    assert renew.renewed == [job.id]


async def test_a_lease_of_a_finished_job_cannot_be_extended(queue: JobQueue):
    job = await running_job(queue)
    await queue.complete_many([Completion(lease=job.lease)])

    renew = await queue.extend_leases([LeaseExtension(lease=job.lease, seconds=10)])

    assert renew.renewed == []
    assert renew.lost == [job.lease]
    assert holds_no_lease(await stored(queue, job.id))
