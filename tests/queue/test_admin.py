"""Admin verbs: cancel, pause, resume, retry, and looking at and clearing the queue."""

from __future__ import annotations

from datetime import timedelta

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

STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "paused"]


async def job_in(queue: JobQueue, status: str, *, queue_name: str = "default") -> JobRow:
    """A fresh job brought to `status` by the queue's own verbs."""
    task = f"t-{status}"
    job = (await queue.enqueue(NewJob(task=task, queue=queue_name))).job
    if status == "paused":
        assert await queue.pause(job.id)
    elif status == "cancelled":
        assert await queue.cancel(job.id)
    elif status != "queued":
        (claimed,) = await queue.claim([task], limit=1, owner="w")
        if status == "succeeded":
            await queue.complete_many([Completion(lease=claimed.lease)])
        elif status == "failed":
            await queue.fail_many([Failure(lease=claimed.lease, error="boom")])
    stored = await queue.get(job.id)
    assert stored is not None
    assert stored.status == status
    return stored


async def stored(queue: JobQueue, job_id: int) -> JobRow:
    job = await queue.get(job_id)
    assert job is not None
    return job


# What each verb does to a job in each status: (returns, status afterwards).
ALLOWED = {
    "cancel": {
        "queued": (True, "cancelled"),
        "paused": (True, "cancelled"),
        "running": (True, "running"),  # asked; its worker ends it
    },
    "pause": {"queued": (True, "paused")},
    "resume": {"paused": (True, "queued")},
    "retry": {"failed": (True, "queued"), "cancelled": (True, "queued")},
}
CASES = [
    (verb, status, *ALLOWED[verb].get(status, (False, status)))
    for verb in ALLOWED
    for status in STATUSES
]


@pytest.mark.parametrize(("verb", "status", "returns", "after"), CASES)
async def test_an_admin_verb_returns_true_only_when_it_applies_to_the_jobs_status(
    queue: JobQueue, verb: str, status: str, returns: bool, after: str
):
    job = await job_in(queue, status)

    assert await getattr(queue, verb)(job.id) is returns

    now = await stored(queue, job.id)
    assert now.status == after
    if not returns:
        assert now == job  # a refused verb changes nothing


@pytest.mark.parametrize("verb", list(ALLOWED))
async def test_an_admin_verb_on_an_unknown_job_returns_false(queue: JobQueue, verb: str):
    assert await getattr(queue, verb)(424242) is False


@pytest.mark.parametrize("status", ["queued", "paused"])
async def test_cancelling_a_waiting_job_finishes_it_at_once(queue: JobQueue, status: str):
    job = await job_in(queue, status)
    await queue.cancel(job.id)
    cancelled = await stored(queue, job.id)
    assert cancelled.finished_at is not None
    assert cancelled.cancel_requested is False


async def test_cancelling_a_running_job_asks_for_the_cancel_and_lease_renewal_reports_it(
    queue: JobQueue,
):
    job = await job_in(queue, "running")

    assert await queue.cancel(job.id) is True

    asked = await stored(queue, job.id)
    assert asked.status == "running"
    assert asked.cancel_requested is True
    assert asked.finished_at is None
    assert asked.lease_id == job.lease_id
    renew = await queue.extend_leases([LeaseExtension(lease=job.lease, seconds=30)])
    assert renew.renewed == [job.id]
    assert renew.cancel_requested == [job.id]


async def test_a_cancel_already_asked_of_a_running_job_is_not_asked_again(queue: JobQueue):
    job = await job_in(queue, "running")
    assert await queue.cancel(job.id) is True
    assert await queue.cancel(job.id) is False


async def test_a_retried_job_starts_again_from_attempt_zero_runnable_now(
    queue: JobQueue, pool: asyncpg.Pool
):
    await queue.enqueue(NewJob(task="t", max_attempts=2, delay=0))
    for _ in range(2):
        (job,) = await queue.claim(["t"], limit=1, owner="w")
        await queue.fail_many([Failure(lease=job.lease, error="boom", retry_in=0)])
    failed = await stored(queue, job.id)
    assert (failed.status, failed.attempts) == ("failed", 2)

    assert await queue.retry(job.id) is True

    again = await stored(queue, job.id)
    assert (again.status, again.attempts) == ("queued", 0)
    assert again.finished_at is None
    assert again.started_at is None
    assert again.result is None
    assert again.run_at <= await pool.fetchval("SELECT now()")
    (claimed,) = await queue.claim(["t"], limit=1, owner="w")
    assert claimed.id == job.id
    assert claimed.attempts == 1


async def test_a_retried_job_that_had_been_cancelled_while_running_runs_to_success(
    queue: JobQueue,
):
    job = await job_in(queue, "running")
    await queue.cancel(job.id)
    await queue.fail_many([Failure(lease=job.lease, error="cancelled while running")])
    assert (await stored(queue, job.id)).status == "cancelled"

    assert await queue.retry(job.id) is True

    assert (await stored(queue, job.id)).cancel_requested is False
    (claimed,) = await queue.claim([job.task], limit=1, owner="w")
    ack = await queue.complete_many([Completion(lease=claimed.lease)])
    assert ack.applied == {job.id: "succeeded"}


async def test_a_paused_job_keeps_its_place_and_is_claimable_again_once_resumed(
    queue: JobQueue,
):
    job = (await queue.enqueue(NewJob(task="t"))).job
    await queue.pause(job.id)
    assert await queue.claim(["t"], limit=1, owner="w") == []

    await queue.resume(job.id)

    (claimed,) = await queue.claim(["t"], limit=1, owner="w")
    assert claimed.id == job.id
    assert claimed.run_at == job.run_at


# ---- looking at the queue ----------------------------------------------------------


async def test_get_returns_the_stored_job_or_none(queue: JobQueue):
    job = (await queue.enqueue(NewJob(task="t"))).job
    assert await queue.get(job.id) == job
    assert await queue.get(job.id + 1) is None


async def test_get_many_returns_the_jobs_that_exist_by_id(queue: JobQueue):
    a, b = (r.job for r in await queue.enqueue_many([NewJob(task="a"), NewJob(task="b")]))
    assert await queue.get_many([b.id, a.id, 999_999]) == {a.id: a, b.id: b}
    assert await queue.get_many([]) == {}


async def test_list_jobs_lists_newest_first_filtered_by_status_and_queue_up_to_a_limit(
    queue: JobQueue,
):
    ids = [
        r.job.id
        for r in await queue.enqueue_many(
            [NewJob(task="t", queue="q1" if i % 2 else "q2") for i in range(6)]
        )
    ]
    await queue.pause(ids[1])

    assert [j.id for j in await queue.list_jobs()] == ids[::-1]
    assert [j.id for j in await queue.list_jobs(limit=2)] == ids[:-3:-1]
    assert [j.id for j in await queue.list_jobs(queue="q1")] == [ids[5], ids[3], ids[1]]
    assert [j.id for j in await queue.list_jobs(status="paused")] == [ids[1]]
    assert [j.id for j in await queue.list_jobs(status="queued", queue="q1")] == [ids[5], ids[3]]
    assert await queue.list_jobs(status="failed") == []


async def test_count_queued_counts_queued_jobs_due_or_not_of_the_given_queues(
    queue: JobQueue,
):
    await queue.enqueue_many(
        [
            NewJob(task="t", queue="a"),
            NewJob(task="t", queue="a", delay=3600),
            NewJob(task="t", queue="b"),
            NewJob(task="t", queue="c"),
        ]
    )
    await job_in(queue, "paused", queue_name="a")
    await job_in(queue, "running", queue_name="a")

    assert await queue.count_queued() == 4
    assert await queue.count_queued(["a"]) == 2
    assert await queue.count_queued(["b", "c"]) == 2
    assert await queue.count_queued(["nowhere"]) == 0


async def test_stats_count_jobs_per_queue_and_status_with_the_age_of_the_oldest_due_job(
    queue: JobQueue, pool: asyncpg.Pool
):
    now = await pool.fetchval("SELECT now()")
    await queue.enqueue_many(
        [
            NewJob(task="t", queue="a", run_at=now - timedelta(seconds=60)),
            NewJob(task="t", queue="a", run_at=now - timedelta(seconds=10)),
            NewJob(task="t", queue="a", delay=3600),
            NewJob(task="t", queue="b", delay=3600),
        ]
    )
    await job_in(queue, "running", queue_name="a")
    await job_in(queue, "succeeded", queue_name="b")
    await job_in(queue, "succeeded", queue_name="b")

    stats = {(s.queue, s.status): s for s in await queue.stats()}

    assert {key: s.count for key, s in stats.items()} == {
        ("a", "queued"): 3,
        ("a", "running"): 1,
        ("b", "queued"): 1,
        ("b", "succeeded"): 2,
    }
    age = stats["a", "queued"].oldest_queued_age
    assert age is not None
    assert 60 <= age < 90
    assert stats["b", "queued"].oldest_queued_age is None  # nothing due yet
    assert stats["a", "running"].oldest_queued_age is None
    assert stats["b", "succeeded"].oldest_queued_age is None


async def test_stats_of_an_empty_queue_are_empty(queue: JobQueue):
    assert await queue.stats() == []


async def test_clear_deletes_every_job_or_those_of_the_given_queues_and_says_how_many(
    queue: JobQueue,
):
    await queue.enqueue_many([NewJob(task="t", queue=q) for q in ("a", "a", "b", "c")])
    await job_in(queue, "running", queue_name="a")

    assert await queue.clear(["a", "b"]) == 4
    assert [j.queue for j in await queue.list_jobs()] == ["c"]
    assert await queue.clear() == 1
    assert await queue.list_jobs() == []
