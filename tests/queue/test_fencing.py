"""Fencing: once a lease ran out and the job was taken over, its first claimer is powerless."""

from __future__ import annotations

import asyncpg
import pytest

from taskrunner.queue import (
    Completion,
    Failure,
    JobQueue,
    JobRow,
    LeaseExtension,
    NewJob,
)


async def expire_lease(pool: asyncpg.Pool, schema: str, job_id: int) -> None:
    """Move a running job's lease expiry into the past, as if its worker stopped renewing."""
    await pool.execute(
        f"UPDATE \"{schema}\".jobs SET lease_expires_at = now() - interval '1 second' "
        "WHERE id = $1",
        job_id,
    )


async def stored(queue: JobQueue, job_id: int) -> JobRow:
    job = await queue.get(job_id)
    assert job is not None
    return job


@pytest.fixture
async def taken_over(queue: JobQueue, pool: asyncpg.Pool) -> tuple[JobRow, JobRow]:
    """A job claimed by "first", whose lease expired, rescued and re-claimed by "second"."""
    await queue.enqueue(NewJob(task="t"))
    (first,) = await queue.claim(["t"], limit=1, owner="first")
    await expire_lease(pool, queue.schema, first.id)
    assert await queue.rescue_expired() == [(first.id, "queued")]
    (second,) = await queue.claim(["t"], limit=1, owner="second")
    assert second.id == first.id
    return first, second


async def test_a_running_job_whose_lease_expired_is_not_claimable_until_rescued(
    queue: JobQueue, pool: asyncpg.Pool
):
    await queue.enqueue(NewJob(task="t"))
    (first,) = await queue.claim(["t"], limit=1, owner="first")
    await expire_lease(pool, queue.schema, first.id)

    assert await queue.claim(["t"], limit=1, owner="second") == []
    await queue.rescue_expired()
    assert [j.id for j in await queue.claim(["t"], limit=1, owner="second")] == [first.id]


async def test_the_takeover_gives_the_job_a_new_lease_and_owner(
    taken_over: tuple[JobRow, JobRow],
):
    first, second = taken_over
    assert second.lease_id != first.lease_id
    assert (second.lease_owner, second.status) == ("second", "running")


async def test_every_claim_counts_as_an_attempt_including_the_lost_one(
    taken_over: tuple[JobRow, JobRow],
):
    first, second = taken_over
    assert (first.attempts, second.attempts) == (1, 2)


async def test_a_job_whose_lease_expired_and_was_reclaimed_cannot_be_completed_by_its_first_claimer(
    queue: JobQueue, taken_over: tuple[JobRow, JobRow]
):
    first, second = taken_over

    ack = await queue.complete_many([Completion(lease=first.lease, result=b'"stale"')])

    assert ack.applied == {}
    assert ack.lost == [first.lease]
    assert await stored(queue, first.id) == second


async def test_a_job_whose_lease_expired_and_was_reclaimed_cannot_be_failed_by_its_first_claimer(
    queue: JobQueue, taken_over: tuple[JobRow, JobRow]
):
    first, second = taken_over

    for retry_in in (None, 0.0):
        ack = await queue.fail_many([Failure(lease=first.lease, error="x", retry_in=retry_in)])
        assert ack.applied == {}
        assert ack.lost == [first.lease]
    assert await stored(queue, first.id) == second


async def test_a_job_whose_lease_expired_and_was_reclaimed_cannot_be_released_by_its_first_claimer(
    queue: JobQueue, taken_over: tuple[JobRow, JobRow]
):
    first, second = taken_over

    ack = await queue.release_many([first.lease])

    assert ack.applied == {}
    assert ack.lost == [first.lease]
    assert await stored(queue, first.id) == second


async def test_a_lease_that_was_taken_over_cannot_be_extended_by_its_first_claimer(
    queue: JobQueue, taken_over: tuple[JobRow, JobRow]
):
    first, second = taken_over

    renew = await queue.extend_leases([LeaseExtension(lease=first.lease, seconds=600)])

    assert renew.renewed == []
    assert renew.lost == [first.lease]
    assert await stored(queue, first.id) == second


async def test_the_second_claimer_of_a_taken_over_job_completes_it(
    queue: JobQueue, taken_over: tuple[JobRow, JobRow]
):
    first, second = taken_over
    await queue.complete_many([Completion(lease=first.lease, result=b'"stale"')])

    ack = await queue.complete_many([Completion(lease=second.lease, result=b'"fresh"')])

    assert ack.applied == {second.id: "succeeded"}
    assert ack.lost == []
    done = await stored(queue, second.id)
    assert (done.status, done.result, done.attempts) == ("succeeded", b'"fresh"', 2)


async def test_a_lease_expired_during_the_last_attempt_fails_the_job_on_rescue(
    queue: JobQueue, pool: asyncpg.Pool
):
    await queue.enqueue(NewJob(task="t", max_attempts=1))
    (job,) = await queue.claim(["t"], limit=1, owner="first")
    await expire_lease(pool, queue.schema, job.id)

    assert await queue.rescue_expired() == [(job.id, "failed")]

    failed = await stored(queue, job.id)
    assert failed.status == "failed"
    assert failed.finished_at is not None
    assert failed.attempts == 1
    assert failed.lease_id is None
    assert await queue.claim(["t"], limit=1, owner="second") == []
    ack = await queue.complete_many([Completion(lease=job.lease)])
    assert ack.lost == [job.lease]
    assert (await stored(queue, job.id)) == failed


@pytest.mark.parametrize(
    "change",
    [
        "status = 'succeeded'",  # finished, lease still set
        "lease_id = NULL",  # running without a lease
    ],
)
async def test_the_schema_refuses_a_lease_on_a_job_that_does_not_run_and_vice_versa(
    queue: JobQueue, pool: asyncpg.Pool, change: str
):
    """Acks match on the lease alone, so this invariant is what fencing rests on."""
    await queue.enqueue(NewJob(task="t"))
    (job,) = await queue.claim(["t"], limit=1, owner="w")
    with pytest.raises(asyncpg.CheckViolationError, match="jobs_lease_only_while_running"):
        await pool.execute(f'UPDATE "{queue.schema}".jobs SET {change} WHERE id = $1', job.id)
