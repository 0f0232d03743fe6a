"""Maintenance: rescuing jobs of dead workers, and deleting finished jobs past retention."""

from __future__ import annotations

import asyncpg

from taskrunner.queue import Completion, Failure, JobQueue, JobRow, NewJob


async def expire_lease(pool: asyncpg.Pool, schema: str, job_id: int) -> None:
    await pool.execute(
        f"UPDATE \"{schema}\".jobs SET lease_expires_at = now() - interval '1 second' "
        "WHERE id = $1",
        job_id,
    )


async def finished_ago(pool: asyncpg.Pool, schema: str, job_id: int, seconds: float) -> None:
    await pool.execute(
        f'UPDATE "{schema}".jobs SET finished_at = now() - make_interval(secs => $2) WHERE id = $1',
        job_id,
        seconds,
    )


async def stored(queue: JobQueue, job_id: int) -> JobRow:
    job = await queue.get(job_id)
    assert job is not None
    return job


async def running_jobs(queue: JobQueue, n: int, *, max_attempts: int = 5) -> list[JobRow]:
    await queue.enqueue_many([NewJob(task="t", max_attempts=max_attempts) for _ in range(n)])
    return await queue.claim(["t"], limit=n, owner="dead-worker")


# ---- rescue ------------------------------------------------------------------------


async def test_rescue_leaves_jobs_whose_lease_is_still_live_alone(queue: JobQueue):
    (job,) = await running_jobs(queue, 1)
    assert await queue.rescue_expired() == []
    assert await stored(queue, job.id) == job


async def test_a_rescued_job_is_queued_again_runnable_at_once_with_the_reason_recorded(
    queue: JobQueue, pool: asyncpg.Pool
):
    (job,) = await running_jobs(queue, 1)
    await expire_lease(pool, queue.schema, job.id)

    assert await queue.rescue_expired() == [(job.id, "queued")]

    rescued = await stored(queue, job.id)
    assert rescued.status == "queued"
    assert rescued.attempts == 1
    assert rescued.lease_id is None
    assert rescued.lease_owner is None
    assert rescued.last_error is not None
    assert "lease expired" in rescued.last_error
    assert "dead-worker" in rescued.last_error
    assert rescued.run_at <= await pool.fetchval("SELECT now()")
    assert await queue.runnable_exists(["t"])


async def test_a_rescued_job_keeps_its_place_in_the_queue(queue: JobQueue, pool: asyncpg.Pool):
    (job,) = await running_jobs(queue, 1)
    before = await stored(queue, job.id)
    await queue.enqueue_many([NewJob(task="t") for _ in range(3)])  # enqueued after it
    await expire_lease(pool, queue.schema, job.id)

    await queue.rescue_expired()

    assert (await stored(queue, job.id)).run_at == before.run_at
    (first,) = await queue.claim(["t"], limit=1, owner="w")
    assert first.id == job.id  # not behind the jobs enqueued while it ran


async def test_a_rescued_job_whose_cancel_was_asked_ends_cancelled(
    queue: JobQueue, pool: asyncpg.Pool
):
    (job,) = await running_jobs(queue, 1)
    await queue.cancel(job.id)
    await expire_lease(pool, queue.schema, job.id)

    assert await queue.rescue_expired() == [(job.id, "cancelled")]
    assert (await stored(queue, job.id)).finished_at is not None


async def test_a_rescued_job_that_used_its_last_attempt_fails(queue: JobQueue, pool: asyncpg.Pool):
    (job,) = await running_jobs(queue, 1, max_attempts=1)
    await expire_lease(pool, queue.schema, job.id)

    assert await queue.rescue_expired() == [(job.id, "failed")]
    failed = await stored(queue, job.id)
    assert failed.finished_at is not None
    assert failed.attempts == 1


async def test_rescue_takes_at_most_its_limit_per_call(queue: JobQueue, pool: asyncpg.Pool):
    jobs = await running_jobs(queue, 5)
    for job in jobs:
        await expire_lease(pool, queue.schema, job.id)

    first = await queue.rescue_expired(limit=3)
    second = await queue.rescue_expired(limit=3)

    assert (len(first), len(second)) == (3, 2)
    assert {i for i, _ in first + second} == {j.id for j in jobs}
    assert await queue.rescue_expired() == []


# ---- deleting finished jobs --------------------------------------------------------


async def test_delete_finished_deletes_only_finished_jobs_older_than_the_threshold(
    queue: JobQueue, pool: asyncpg.Pool
):
    jobs = await running_jobs(queue, 5)
    old_success, old_failure, old_cancel, recent, still_running = jobs
    await queue.complete_many([Completion(lease=old_success.lease), Completion(lease=recent.lease)])
    await queue.fail_many([Failure(lease=old_failure.lease, error="x")])
    await queue.cancel(old_cancel.id)
    await queue.complete_many([Completion(lease=old_cancel.lease)])
    old_queued = (await queue.enqueue(NewJob(task="t"))).job
    await pool.execute(
        f"UPDATE \"{queue.schema}\".jobs SET created_at = now() - interval '1 day', "
        "started_at = now() - interval '1 day'"
    )
    for job in (old_success, old_failure, old_cancel):
        await finished_ago(pool, queue.schema, job.id, 3600)
    await finished_ago(pool, queue.schema, recent.id, 60)

    assert await queue.delete_finished(older_than=600) == 3

    left = await queue.get_many([j.id for j in [*jobs, old_queued]])
    assert set(left) == {recent.id, still_running.id, old_queued.id}


async def test_delete_finished_deletes_at_most_its_limit_per_call(
    queue: JobQueue, pool: asyncpg.Pool
):
    jobs = await running_jobs(queue, 5)
    await queue.complete_many([Completion(lease=j.lease) for j in jobs])
    for job in jobs:
        await finished_ago(pool, queue.schema, job.id, 100)

    assert await queue.delete_finished(older_than=10, limit=2) == 2
    assert await queue.delete_finished(older_than=10, limit=10) == 3
    assert await queue.delete_finished(older_than=10) == 0


async def test_deleting_a_finished_job_frees_its_idempotency_key(
    queue: JobQueue, pool: asyncpg.Pool
):
    holder = (await queue.enqueue(NewJob(task="t", args=b"[1]", idempotency_key="k"))).job
    (claimed,) = await queue.claim(["t"], limit=1, owner="w")
    await queue.complete_many([Completion(lease=claimed.lease)])
    await finished_ago(pool, queue.schema, holder.id, 100)
    assert await queue.delete_finished(older_than=10) == 1

    fresh = await queue.enqueue(NewJob(task="t", args=b"[2]", idempotency_key="k"))

    assert not fresh.deduplicated
    assert fresh.job.id != holder.id
