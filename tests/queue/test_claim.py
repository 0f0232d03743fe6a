"""Claim: which jobs a claimer gets, in which order, and that nobody gets one twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from taskrunner.queue import Completion, JobQueue, NewJob

T0 = datetime(2020, 1, 1, tzinfo=UTC)


def job_at(priority: int, seconds: int) -> NewJob:
    """A job of `priority` due `seconds` after T0, its args naming both."""
    return NewJob(
        task="t",
        priority=priority,
        run_at=T0 + timedelta(seconds=seconds),
        args=f"[{priority}, {seconds}]".encode(),
    )


async def db_now(pool: asyncpg.Pool) -> datetime:
    return await pool.fetchval("SELECT now()")


async def test_claiming_nothing_or_no_tasks_returns_nothing(queue: JobQueue):
    await queue.enqueue(NewJob(task="t"))
    assert await queue.claim(["t"], limit=0, owner="w") == []
    assert await queue.claim([], limit=5, owner="w") == []
    assert await queue.count_queued() == 1


async def test_a_claimed_job_runs_under_a_fresh_lease_of_the_requested_length(
    queue: JobQueue, pool: asyncpg.Pool
):
    enqueued = (await queue.enqueue(NewJob(task="t"))).job
    before = await db_now(pool)

    (job,) = await queue.claim(["t"], limit=5, owner="worker-1", lease=120)

    after = await db_now(pool)
    assert job.id == enqueued.id
    assert (job.status, job.attempts, job.lease_owner) == ("running", 1, "worker-1")
    assert job.lease_id is not None
    assert job.lease_expires_at is not None
    assert job.started_at is not None
    assert before + timedelta(seconds=120) <= job.lease_expires_at <= after + timedelta(seconds=120)
    assert before <= job.started_at <= after
    assert await queue.get(job.id) == job


async def test_each_task_may_have_its_own_lease_length(queue: JobQueue):
    await queue.enqueue_many([NewJob(task="short"), NewJob(task="long"), NewJob(task="other")])

    claimed = await queue.claim(
        ["short", "long", "other"], limit=3, owner="w", lease={"short": 5, "long": 500}
    )

    lengths = {
        j.task: round((j.lease_expires_at - j.started_at).total_seconds())  # type: ignore[operator]
        for j in claimed
    }
    assert lengths == {"short": 5, "long": 500, "other": 30}


async def test_every_claim_draws_a_distinct_lease_id(queue: JobQueue):
    await queue.enqueue_many([NewJob(task="t") for _ in range(5)])
    claimed = [
        *await queue.claim(["t"], limit=2, owner="a"),
        *await queue.claim(["t"], limit=3, owner="b"),
    ]
    assert len({j.lease_id for j in claimed}) == 5


async def test_lease_ids_are_random_64_bit_numbers_not_a_sequence(queue: JobQueue):
    """Random, so that a claim lost in a server crash can never see its id reissued."""
    await queue.enqueue_many([NewJob(task="t") for _ in range(200)])
    claimed = await queue.claim(["t"], limit=200, owner="w")
    ids = sorted(j.lease_id for j in claimed if j.lease_id is not None)
    assert len(set(ids)) == 200
    assert ids[-1] - ids[0] > 2**60  # spread over the whole range, not counted up


async def test_a_claimed_row_is_the_stored_row_column_for_column(queue: JobQueue):
    await queue.enqueue(
        NewJob(
            task="t",
            args=b"[1, 2]",
            kwargs=b'{"k": "v"}',
            queue="q",
            priority=3,
            max_attempts=7,
            idempotency_key="key",
            request_id="rid",
        )
    )
    (claimed,) = await queue.claim(["t"], limit=1, owner="w", lease=60)
    assert claimed == await queue.get(claimed.id)


async def test_a_running_job_is_not_claimed_again(queue: JobQueue):
    await queue.enqueue(NewJob(task="t"))
    assert len(await queue.claim(["t"], limit=1, owner="a")) == 1
    assert await queue.claim(["t"], limit=1, owner="b") == []


async def test_a_claimer_gets_only_jobs_of_the_tasks_it_names(queue: JobQueue):
    await queue.enqueue_many([NewJob(task="a"), NewJob(task="b"), NewJob(task="c")])
    claimed = await queue.claim(["a", "c"], limit=10, owner="w")
    assert sorted(j.task for j in claimed) == ["a", "c"]


async def test_a_claimer_gets_only_jobs_of_the_queues_it_names_when_it_names_any(
    queue: JobQueue,
):
    await queue.enqueue_many([NewJob(task="t", queue=q) for q in ("q1", "q2", "q3")])

    some = await queue.claim(["t"], limit=10, owner="w", queues=["q1", "q3"])
    assert sorted(j.queue for j in some) == ["q1", "q3"]
    rest = await queue.claim(["t"], limit=10, owner="w")
    assert [j.queue for j in rest] == ["q2"]


async def test_jobs_are_claimed_by_priority_highest_first_then_oldest_run_at_first(
    queue: JobQueue,
):
    specs = [(0, 1), (5, 3), (0, 0), (5, 2), (-1, 0), (9, 9), (0, 2)]  # (priority, seconds)
    await queue.enqueue_many([job_at(p, s) for p, s in specs])
    expected = [f"[{p}, {s}]".encode() for p, s in sorted(specs, key=lambda x: (-x[0], x[1]))]

    all_at_once = await queue.claim(["t"], limit=10, owner="w")
    assert [j.args for j in all_at_once] == expected


async def test_claiming_one_at_a_time_follows_the_same_order(queue: JobQueue):
    specs = [(1, 4), (3, 5), (3, 1), (2, 0), (1, 2)]
    await queue.enqueue_many([job_at(p, s) for p, s in specs])
    expected = [f"[{p}, {s}]".encode() for p, s in sorted(specs, key=lambda x: (-x[0], x[1]))]

    one_by_one = []
    for _ in specs:
        (job,) = await queue.claim(["t"], limit=1, owner="w")
        one_by_one.append(job.args)
    assert one_by_one == expected


async def test_among_equal_priority_and_run_at_the_job_enqueued_first_is_claimed_first(
    queue: JobQueue,
):
    ids = [r.job.id for r in await queue.enqueue_many([NewJob(task="t", run_at=T0)] * 4)]
    claimed = [(await queue.claim(["t"], limit=1, owner="w"))[0].id for _ in ids]
    assert claimed == ids


@pytest.mark.parametrize(
    "job",
    [NewJob(task="t", delay=3600), NewJob(task="t", run_at=datetime(2999, 1, 1, tzinfo=UTC))],
    ids=["delay", "run_at"],
)
async def test_a_job_due_in_the_future_is_not_claimable_before_its_time(
    queue: JobQueue, job: NewJob
):
    await queue.enqueue(job)
    assert await queue.claim(["t"], limit=1, owner="w") == []
    assert await queue.runnable_exists(["t"]) is False


async def test_a_delayed_job_becomes_claimable_once_its_time_has_come(
    queue: JobQueue, pool: asyncpg.Pool
):
    job = (await queue.enqueue(NewJob(task="t", delay=3600))).job
    await pool.execute(
        f"UPDATE \"{queue.schema}\".jobs SET run_at = now() - interval '1 second' WHERE id = $1",
        job.id,
    )
    assert await queue.runnable_exists(["t"]) is True
    assert [j.id for j in await queue.claim(["t"], limit=1, owner="w")] == [job.id]


async def test_a_due_job_is_claimed_before_a_higher_priority_job_that_is_not_due(
    queue: JobQueue,
):
    await queue.enqueue(NewJob(task="t", priority=100, delay=3600, args=b'["later"]'))
    await queue.enqueue(NewJob(task="t", priority=0, args=b'["now"]'))
    claimed = await queue.claim(["t"], limit=5, owner="w")
    assert [j.args for j in claimed] == [b'["now"]']


async def test_next_run_at_names_the_earliest_queued_job_of_the_tasks(queue: JobQueue):
    assert await queue.next_run_at(["t"]) is None
    await queue.enqueue_many(
        [
            NewJob(task="t", run_at=datetime(2999, 1, 2, tzinfo=UTC)),
            NewJob(task="t", run_at=datetime(2999, 1, 1, tzinfo=UTC)),
            NewJob(task="other", run_at=datetime(2998, 1, 1, tzinfo=UTC)),
        ]
    )
    assert await queue.next_run_at(["t"]) == datetime(2999, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("status", ["paused", "cancelled"])
async def test_a_paused_or_cancelled_job_is_not_claimed(queue: JobQueue, status: str):
    job = (await queue.enqueue(NewJob(task="t"))).job
    assert await (queue.pause(job.id) if status == "paused" else queue.cancel(job.id))
    assert await queue.claim(["t"], limit=1, owner="w") == []


async def test_eight_concurrent_claimers_over_5000_jobs_claim_every_job_exactly_once(
    queue: JobQueue, pool: asyncpg.Pool
):
    enqueued = await queue.enqueue_many(
        [NewJob(task="t", args=f"[{i}]".encode()) for i in range(5000)]
    )
    all_ids = {r.job.id for r in enqueued}
    assert len(all_ids) == 5000

    async def claimer(name: str) -> list[int]:
        mine: list[int] = []
        while True:
            claimed = await queue.claim(["t"], limit=25, owner=name)
            if not claimed:
                return mine
            mine.extend(j.id for j in claimed)
            ack = await queue.complete_many([Completion(lease=j.lease) for j in claimed])
            assert ack.lost == []
            await asyncio.sleep(0)  # let the others in

    per_claimer = await asyncio.gather(*(claimer(f"w{i}") for i in range(8)))

    seen = [job_id for ids in per_claimer for job_id in ids]
    assert len(seen) == len(set(seen)) == 5000  # nobody claimed a job twice
    assert set(seen) == all_ids
    assert sum(1 for ids in per_claimer if ids) > 1  # the claimers really ran side by side
    counts = await pool.fetch(
        f'SELECT status::text, count(*) FROM "{queue.schema}".jobs GROUP BY status'
    )
    assert {r["status"]: r["count"] for r in counts} == {"succeeded": 5000}
    assert await pool.fetchval(f'SELECT max(attempts) FROM "{queue.schema}".jobs') == 1
