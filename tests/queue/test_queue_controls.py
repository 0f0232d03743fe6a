"""Queue controls in the bare queue: the database enforces pauses and limits."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from taskrunner.queue import Completion, Failure, JobQueue, Lease, NewJob
from taskrunner.queue.queues import QueueControls

LEASES = {"t": 30.0}


@pytest.fixture
def controls(pool: asyncpg.Pool, schema: str) -> QueueControls:
    return QueueControls(pool, schema)


async def enqueue(queue: JobQueue, name: str, count: int) -> list[int]:
    results = await queue.enqueue_many(
        [NewJob(task="t", queue=name, args=f"[{i}]".encode()) for i in range(count)]
    )
    return [r.job.id for r in results]


async def claim_limited(controls: QueueControls, name: str, limit: int = 10) -> list[int]:
    rows = await controls.claim_limited(name, ["t"], limit=limit, owner="w", lease=LEASES)
    return [r.id for r in rows]


async def test_the_ordinary_claim_leaves_a_paused_queue_alone(
    queue: JobQueue, controls: QueueControls
):
    await enqueue(queue, "held", 3)
    (free,) = await enqueue(queue, "free", 1)

    assert await controls.pause("held") is True
    claimed = await queue.claim(["t"], limit=10, owner="w")

    assert [j.id for j in claimed] == [free]
    assert await queue.count_queued(["held"]) == 3


async def test_a_resumed_queue_is_claimed_again(queue: JobQueue, controls: QueueControls):
    ids = await enqueue(queue, "held", 2)
    await controls.pause("held")
    assert await controls.resume("held") is True

    assert sorted(j.id for j in await queue.claim(["t"], limit=10, owner="w")) == ids


async def test_pause_and_resume_say_whether_they_changed_the_queue(controls: QueueControls):
    assert await controls.resume("q") is False  # never paused
    assert await controls.pause("q") is True
    assert await controls.pause("q") is False
    assert await controls.resume("q") is True
    assert await controls.resume("q") is False


async def test_a_limited_queue_is_claimed_only_through_its_limit(
    queue: JobQueue, controls: QueueControls
):
    await enqueue(queue, "capped", 5)
    await controls.configure("capped", concurrency=2, rate_limit=None, rate_per=None)

    assert await queue.claim(["t"], limit=10, owner="w") == []
    assert len(await claim_limited(controls, "capped")) == 2
    assert await claim_limited(controls, "capped") == []


async def test_a_finished_job_frees_its_slot(queue: JobQueue, controls: QueueControls):
    await enqueue(queue, "capped", 3)
    await controls.configure("capped", concurrency=1, rate_limit=None, rate_per=None)
    (first,) = await controls.claim_limited("capped", ["t"], limit=5, owner="w", lease=LEASES)

    await queue.complete_many([Completion(lease=first.lease)])

    assert len(await claim_limited(controls, "capped")) == 1


async def test_a_failed_attempt_queued_for_retry_frees_its_slot(
    queue: JobQueue, controls: QueueControls
):
    await enqueue(queue, "capped", 2)
    await controls.configure("capped", concurrency=1, rate_limit=None, rate_per=None)
    (first,) = await controls.claim_limited("capped", ["t"], limit=5, owner="w", lease=LEASES)

    await queue.fail_many([Failure(lease=first.lease, error="boom", retry_in=3600)])

    assert len(await claim_limited(controls, "capped")) == 1


async def test_a_serial_queue_hands_out_its_jobs_one_by_one_in_claim_order(
    queue: JobQueue, controls: QueueControls
):
    ids = await enqueue(queue, "serial", 5)
    await controls.configure("serial", concurrency=1, rate_limit=None, rate_per=None)

    order = []
    for _ in ids:
        (job,) = await controls.claim_limited("serial", ["t"], limit=5, owner="w", lease=LEASES)
        assert await claim_limited(controls, "serial") == []  # one at a time
        order.append(job.id)
        await queue.complete_many([Completion(lease=job.lease)])

    assert order == ids


async def test_a_slot_held_by_a_dead_worker_frees_when_its_lease_is_rescued(
    queue: JobQueue, controls: QueueControls, pool: asyncpg.Pool, schema: str
):
    await enqueue(queue, "serial", 2)
    await controls.configure("serial", concurrency=1, rate_limit=None, rate_per=None)
    (held,) = await claim_limited(controls, "serial")
    assert await claim_limited(controls, "serial") == []

    await pool.execute(
        f"UPDATE \"{schema}\".jobs SET lease_expires_at = now() - interval '1 second' "
        "WHERE id = $1",
        held,
    )
    await queue.rescue_expired()

    assert len(await claim_limited(controls, "serial")) == 1


async def test_concurrent_claimers_never_exceed_the_concurrency(
    queue: JobQueue, controls: QueueControls
):
    await enqueue(queue, "capped", 50)
    await controls.configure("capped", concurrency=3, rate_limit=None, rate_per=None)

    batches = await asyncio.gather(*(claim_limited(controls, "capped", 2) for _ in range(10)))

    assert sum(len(b) for b in batches) == 3


async def test_a_rate_limit_allows_n_starts_per_period(queue: JobQueue, controls: QueueControls):
    await enqueue(queue, "rated", 10)
    await controls.configure("rated", concurrency=None, rate_limit=4, rate_per=3600.0)

    batches = await asyncio.gather(*(claim_limited(controls, "rated", 3) for _ in range(5)))

    assert sum(len(b) for b in batches) == 4


async def test_starts_older_than_the_period_no_longer_count(
    queue: JobQueue, controls: QueueControls, pool: asyncpg.Pool, schema: str
):
    await enqueue(queue, "rated", 4)
    await controls.configure("rated", concurrency=None, rate_limit=2, rate_per=60.0)
    assert len(await claim_limited(controls, "rated")) == 2
    await pool.execute(
        f'UPDATE "{schema}".queue_state SET recent_starts = ARRAY['
        "now() - interval '61 seconds', now() - interval '30 seconds']"
    )

    assert len(await claim_limited(controls, "rated")) == 1


async def test_jobs_running_when_a_limit_is_set_hold_slots(
    queue: JobQueue, controls: QueueControls
):
    await enqueue(queue, "q", 4)
    running = await queue.claim(["t"], limit=2, owner="w")
    assert len(running) == 2

    await controls.configure("q", concurrency=3, rate_limit=None, rate_per=None)

    assert len(await claim_limited(controls, "q")) == 1


async def test_a_paused_limited_queue_starts_nothing(queue: JobQueue, controls: QueueControls):
    await enqueue(queue, "capped", 2)
    await controls.configure("capped", concurrency=2, rate_limit=None, rate_per=None)
    await controls.pause("capped")

    assert await claim_limited(controls, "capped") == []
    assert await controls.limited() == []
    await controls.resume("capped")
    assert await controls.limited() == ["capped"]


async def test_lifting_every_limit_returns_the_queue_to_the_ordinary_claim(
    queue: JobQueue, controls: QueueControls
):
    await enqueue(queue, "q", 2)
    await controls.configure("q", concurrency=1, rate_limit=None, rate_per=None)
    await controls.configure("q", concurrency=None, rate_limit=None, rate_per=None)

    assert len(await queue.claim(["t"], limit=10, owner="w")) == 2


async def test_a_limited_claim_fails_a_job_with_no_attempts_left_without_a_slot(
    queue: JobQueue, controls: QueueControls, pool: asyncpg.Pool, schema: str
):
    (spent, fresh) = await enqueue(queue, "serial", 2)
    await pool.execute(f'UPDATE "{schema}".jobs SET attempts = max_attempts WHERE id = $1', spent)
    await controls.configure("serial", concurrency=1, rate_limit=None, rate_per=None)

    rows = await controls.claim_limited("serial", ["t"], limit=1, owner="w", lease=LEASES)

    assert [(r.id, r.status) for r in rows] == [(spent, "failed")]
    assert await claim_limited(controls, "serial") == [fresh]


async def test_the_queue_list_shows_settings_and_counts_per_status(
    queue: JobQueue, controls: QueueControls
):
    await enqueue(queue, "a", 2)
    await queue.claim(["t"], limit=1, owner="w")
    await controls.configure("b", concurrency=1, rate_limit=5, rate_per=2.0)
    await controls.pause("b")

    rows = {r.name: r for r in await controls.list_all()}

    assert rows["a"].counts == {"queued": 1, "running": 1}
    assert (rows["a"].paused, rows["a"].concurrency, rows["a"].rate_limit) == (False, None, None)
    assert (rows["b"].paused, rows["b"].concurrency) == (True, 1)
    assert (rows["b"].rate_limit, rows["b"].rate_per, rows["b"].counts) == (5, 2.0, {})


async def test_resume_and_configure_wake_idle_workers(
    pg_dsn: str, schema: str, controls: QueueControls
):
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(pg_dsn)
    try:
        await listener.add_listener(f"{schema}.jobs", lambda *args: heard.put_nowait(args[3]))
        await controls.pause("q")
        await controls.resume("q")
        assert await asyncio.wait_for(heard.get(), 5) == "q"
        await controls.configure("r", concurrency=2, rate_limit=None, rate_per=None)
        assert await asyncio.wait_for(heard.get(), 5) == "r"
    finally:
        await listener.close()


async def test_the_holder_of_a_slot_may_free_it_before_its_ack_with_its_lease(
    queue: JobQueue, controls: QueueControls
):
    await enqueue(queue, "serial", 3)
    await controls.configure("serial", concurrency=1, rate_limit=None, rate_per=None)
    (first,) = await controls.claim_limited("serial", ["t"], limit=5, owner="w", lease=LEASES)
    forged = Lease(job_id=first.id, lease_id=first.lease.lease_id + 1)

    assert (
        await controls.claim_limited(
            "serial", ["t"], limit=5, owner="w", lease=LEASES, ended=[forged]
        )
        == []
    )
    (second,) = await controls.claim_limited(
        "serial", ["t"], limit=5, owner="w", lease=LEASES, ended=[first.lease]
    )
    assert second.id != first.id
