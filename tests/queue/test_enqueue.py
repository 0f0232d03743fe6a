"""Enqueue: what a new job looks like, and idempotency keys at the queue level."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from taskrunner.db import ResolvedDsn, connect
from taskrunner.errors import DatabaseError, IdempotencyConflict
from taskrunner.queue import Completion, JobQueue, NewJob


async def count_jobs(pool: asyncpg.Pool, schema: str) -> int:
    return await pool.fetchval(f'SELECT count(*) FROM "{schema}".jobs')


async def db_now(pool: asyncpg.Pool) -> datetime:
    return await pool.fetchval("SELECT now()")


async def finish(queue: JobQueue, task: str = "t") -> None:
    """Claim and complete every runnable job of `task`."""
    claimed = await queue.claim([task], limit=100, owner="finisher")
    await queue.complete_many([Completion(lease=j.lease) for j in claimed])


async def wait_until_blocked_on_a_lock(pool: asyncpg.Pool, schema: str) -> None:
    """Poll (up to 5 s) until a statement on `schema` waits on another transaction's lock.

    The database offers no event for this, so it is polled."""
    for _ in range(500):
        if await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND position($1 in query) > 0)",
            f'"{schema}".',
        ):
            return
        await asyncio.sleep(0.01)
    pytest.fail("the second enqueue never waited on the first one's lock")


# ---- a new job ---------------------------------------------------------------------


async def test_an_enqueued_job_is_queued_with_its_payload_and_no_attempts_yet(queue: JobQueue):
    result = await queue.enqueue(
        NewJob(task="send", args=b'[1, "a"]', kwargs=b'{"x": true}', queue="mail", priority=3)
    )

    job = result.job
    assert result.deduplicated is False
    assert (job.task, job.queue, job.status, job.priority) == ("send", "mail", "queued", 3)
    assert (job.attempts, job.max_attempts) == (0, 5)
    assert job.lease_id is None
    assert job.lease_owner is None
    assert job.lease_expires_at is None
    assert job.started_at is None
    assert job.finished_at is None
    assert job.result is None
    assert await queue.get(job.id) == job
    assert (job.args, job.kwargs) == (b'[1, "a"]', b'{"x": true}')


async def test_a_job_without_delay_is_due_at_once(queue: JobQueue, pool: asyncpg.Pool):
    job = (await queue.enqueue(NewJob(task="t"))).job
    assert job.run_at <= await db_now(pool)


async def test_a_delayed_job_is_due_that_many_seconds_after_the_database_clock(
    queue: JobQueue, pool: asyncpg.Pool
):
    before = await db_now(pool)
    job = (await queue.enqueue(NewJob(task="t", delay=600))).job
    after = await db_now(pool)
    assert before + timedelta(seconds=600) <= job.run_at <= after + timedelta(seconds=600)


async def test_an_absolute_run_at_wins_over_a_delay(queue: JobQueue):
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    job = (await queue.enqueue(NewJob(task="t", run_at=when, delay=5))).job
    assert job.run_at == when


async def test_enqueue_many_returns_one_result_per_job_in_input_order(queue: JobQueue):
    jobs = [NewJob(task=f"t{i}", args=f"[{i}]".encode()) for i in range(10)]

    results = await queue.enqueue_many(jobs)

    assert [r.job.task for r in results] == [f"t{i}" for i in range(10)]
    assert [r.job.args for r in results] == [f"[{i}]".encode() for i in range(10)]
    assert not any(r.deduplicated for r in results)
    assert len({r.job.id for r in results}) == 10


async def test_a_batch_of_one_kind_returns_the_rows_as_stored_in_input_order(queue: JobQueue):
    """Jobs differing only in their arguments take the one-row-back insert."""
    jobs = [
        NewJob(task="t", args=f"[{i}]".encode(), queue="q", priority=2, delay=5, request_id="r")
        for i in range(50)
    ]

    results = await queue.enqueue_many(jobs)

    assert [r.job.args for r in results] == [f"[{i}]".encode() for i in range(50)]
    assert [r.job for r in results] == [await queue.get(r.job.id) for r in results]
    assert results[0].job.run_at - results[0].job.created_at == timedelta(seconds=5)


async def test_each_job_of_a_batch_keeps_its_own_keyword_arguments(queue: JobQueue):
    jobs = [NewJob(task="t", kwargs=f'{{"n": {i}}}'.encode()) for i in range(3)]

    results = await queue.enqueue_many(jobs)

    stored = [await queue.get(r.job.id) for r in results]
    assert [s.kwargs for s in stored if s is not None] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']


async def test_enqueue_many_of_nothing_writes_nothing(queue: JobQueue, pool: asyncpg.Pool):
    assert await queue.enqueue_many([]) == []
    assert await count_jobs(pool, queue.schema) == 0


@pytest.mark.parametrize("schema_exists", [False, True], ids=["missing", "empty"])
async def test_an_unmigrated_schema_is_reported_as_a_database_error_that_says_to_migrate(
    pool: asyncpg.Pool, bare_schema: str, schema_exists: bool
):
    if schema_exists:
        await pool.execute(f'CREATE SCHEMA "{bare_schema}"')
    queue = JobQueue(pool, bare_schema)
    with pytest.raises(DatabaseError, match="migrate"):
        await queue.enqueue(NewJob(task="t"))


# ---- idempotency keys --------------------------------------------------------------


async def test_a_second_enqueue_with_the_same_key_and_arguments_returns_the_first_job(
    queue: JobQueue, pool: asyncpg.Pool
):
    first = await queue.enqueue(NewJob(task="t", args=b"[1]", idempotency_key="k"))
    second = await queue.enqueue(NewJob(task="t", args=b"[1]", idempotency_key="k"))

    assert (first.deduplicated, second.deduplicated) == (False, True)
    assert second.job.id == first.job.id
    assert await count_jobs(pool, queue.schema) == 1


async def test_twenty_concurrent_enqueues_of_one_key_on_a_pool_make_exactly_one_job(
    queue: JobQueue, pool: asyncpg.Pool
):
    results = await asyncio.gather(
        *(queue.enqueue(NewJob(task="t", args=b"[1]", idempotency_key="k")) for _ in range(20))
    )

    assert {r.job.id for r in results} == {results[0].job.id}
    assert [r.deduplicated for r in results].count(False) == 1
    assert await count_jobs(pool, queue.schema) == 1


async def test_concurrent_enqueues_of_one_key_from_separate_connections_make_exactly_one_job(
    target: ResolvedDsn, schema: str, pool: asyncpg.Pool
):
    connections = [await connect(target) for _ in range(6)]
    try:
        queues = [JobQueue(conn, schema) for conn in connections]
        for round_ in range(5):  # several rounds, a fresh key each, to give the race a chance
            key = f"k{round_}"
            results = await asyncio.gather(
                *(q.enqueue(NewJob(task="t", args=b"[1]", idempotency_key=key)) for q in queues)
            )
            assert {r.job.id for r in results} == {results[0].job.id}
            assert [r.deduplicated for r in results].count(False) == 1
    finally:
        await asyncio.gather(*(conn.close() for conn in connections))
    assert await count_jobs(pool, schema) == 5


async def test_the_same_key_with_different_arguments_raises_a_conflict_and_writes_nothing(
    queue: JobQueue, pool: asyncpg.Pool
):
    holder = (await queue.enqueue(NewJob(task="t", args=b"[1]", idempotency_key="k"))).job

    with pytest.raises(IdempotencyConflict) as raised:
        await queue.enqueue(NewJob(task="t", args=b"[2]", idempotency_key="k"))

    assert (raised.value.task, raised.value.idempotency_key) == ("t", "k")
    assert raised.value.existing_job_id == holder.id
    assert await count_jobs(pool, queue.schema) == 1
    assert await queue.get(holder.id) == holder


async def test_an_explicit_fingerprint_is_the_identity_of_a_call_instead_of_its_arguments(
    queue: JobQueue,
):
    first = await queue.enqueue(
        NewJob(task="t", args=b"[1]", idempotency_key="k", fingerprint="order-7")
    )
    same = await queue.enqueue(
        NewJob(task="t", args=b"[2]", idempotency_key="k", fingerprint="order-7")
    )
    assert same.deduplicated
    assert same.job.id == first.job.id

    with pytest.raises(IdempotencyConflict):
        await queue.enqueue(
            NewJob(task="t", args=b"[1]", idempotency_key="k", fingerprint="order-8")
        )


async def test_a_key_is_scoped_to_its_task(queue: JobQueue):
    a = await queue.enqueue(NewJob(task="a", args=b"[1]", idempotency_key="k"))
    b = await queue.enqueue(NewJob(task="b", args=b"[2]", idempotency_key="k"))
    assert not b.deduplicated
    assert b.job.id != a.job.id


async def test_a_batch_with_one_conflicting_job_writes_none_of_the_batch(
    queue: JobQueue, pool: asyncpg.Pool
):
    await queue.enqueue(NewJob(task="t", args=b"[1]", idempotency_key="taken"))
    batch = [
        NewJob(task="t", args=b"[10]"),
        NewJob(task="t", args=b"[11]", idempotency_key="fresh"),
        NewJob(task="t", args=b"[2]", idempotency_key="taken"),
        NewJob(task="t", args=b"[12]", idempotency_key="fresh-too"),
    ]

    with pytest.raises(IdempotencyConflict) as raised:
        await queue.enqueue_many(batch)

    assert raised.value.index == 2
    assert await count_jobs(pool, queue.schema) == 1


async def test_a_batch_repeating_a_key_with_different_arguments_conflicts_before_writing(
    queue: JobQueue, pool: asyncpg.Pool
):
    batch = [
        NewJob(task="t", args=b"[1]", idempotency_key="k"),
        NewJob(task="t", args=b"[9]"),
        NewJob(task="t", args=b"[2]", idempotency_key="k"),
    ]
    with pytest.raises(IdempotencyConflict) as raised:
        await queue.enqueue_many(batch)
    assert raised.value.index == 2
    assert await count_jobs(pool, queue.schema) == 0


async def test_a_batch_repeating_a_key_with_the_same_arguments_gets_one_job_for_both(
    queue: JobQueue, pool: asyncpg.Pool
):
    results = await queue.enqueue_many(
        [
            NewJob(task="t", args=b"[1]", idempotency_key="k"),
            NewJob(task="t", args=b"[5]"),
            NewJob(task="t", args=b"[1]", idempotency_key="k"),
        ]
    )

    assert results[0].job.id == results[2].job.id
    assert [r.deduplicated for r in results] == [False, False, True]
    assert await count_jobs(pool, queue.schema) == 2


async def test_a_finished_holder_keeps_its_key_within_the_retention(queue: JobQueue):
    holder = (await queue.enqueue(NewJob(task="t", args=b"[1]", idempotency_key="k"))).job
    await finish(queue)

    again = await queue.enqueue(NewJob(task="t", args=b"[1]", idempotency_key="k"))

    assert again.deduplicated
    assert again.job.id == holder.id
    assert again.job.status == "succeeded"


async def test_a_key_is_free_again_once_its_holder_finished_longer_ago_than_the_retention(
    queue: JobQueue, pool: asyncpg.Pool
):
    holder = (await queue.enqueue(NewJob(task="t", args=b"[1]", idempotency_key="k"))).job
    await finish(queue)

    fresh = await queue.enqueue(
        NewJob(task="t", args=b"[2]", idempotency_key="k"), idempotency_ttl=0
    )

    assert not fresh.deduplicated
    assert fresh.job.id != holder.id
    assert fresh.job.status == "queued"
    assert fresh.job.idempotency_key == "k"
    old = await queue.get(holder.id)
    assert old is not None
    assert old.status == "succeeded"
    assert old.idempotency_key is None
    assert await count_jobs(pool, queue.schema) == 2


@pytest.mark.parametrize("holder_state", ["queued", "running"])
async def test_an_unfinished_holder_keeps_its_key_whatever_the_retention(
    queue: JobQueue, holder_state: str
):
    holder = (await queue.enqueue(NewJob(task="t", args=b"[1]", idempotency_key="k"))).job
    if holder_state == "running":
        await queue.claim(["t"], limit=1, owner="w")

    again = await queue.enqueue(
        NewJob(task="t", args=b"[1]", idempotency_key="k"), idempotency_ttl=0
    )
    assert again.deduplicated
    assert again.job.id == holder.id
    with pytest.raises(IdempotencyConflict):
        await queue.enqueue(NewJob(task="t", args=b"[2]", idempotency_key="k"), idempotency_ttl=0)


async def test_a_batch_enqueued_in_a_callers_transaction_that_rolls_back_leaves_nothing(
    queue: JobQueue, pool: asyncpg.Pool
):
    batch = [NewJob(task="t", args=f"[{i}]".encode(), idempotency_key=f"k{i}") for i in range(3)]
    batch.append(NewJob(task="t"))
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        results = await queue.enqueue_many(batch, connection=conn)
        assert len(results) == 4
        await transaction.rollback()

    assert await count_jobs(pool, queue.schema) == 0
    again = await queue.enqueue_many(batch)  # and the keys were never taken
    assert not any(r.deduplicated for r in again)


async def test_a_batch_enqueued_in_a_callers_transaction_appears_when_it_commits(
    queue: JobQueue, pool: asyncpg.Pool
):
    batch = [NewJob(task="t", idempotency_key=f"k{i}") for i in range(3)]
    async with pool.acquire() as conn:
        async with conn.transaction():
            await queue.enqueue_many(batch, connection=conn)
            assert await count_jobs(pool, queue.schema) == 0  # not visible outside yet
        assert await count_jobs(pool, queue.schema) == 3


async def test_a_conflicting_batch_in_a_callers_transaction_leaves_that_transaction_usable(
    queue: JobQueue, pool: asyncpg.Pool
):
    await queue.enqueue(NewJob(task="t", args=b"[1]", idempotency_key="taken"))
    async with pool.acquire() as conn, conn.transaction():
        await queue.enqueue(NewJob(task="t", args=b"[0]"), connection=conn)
        with pytest.raises(IdempotencyConflict):
            await queue.enqueue_many(
                [
                    NewJob(task="t", args=b"[3]", idempotency_key="other"),
                    NewJob(task="t", args=b"[2]", idempotency_key="taken"),
                ],
                connection=conn,
            )
        await queue.enqueue(NewJob(task="t", args=b"[4]"), connection=conn)

    rows = await pool.fetch(f'SELECT args::text FROM "{queue.schema}".jobs ORDER BY id')
    assert [r["args"] for r in rows] == ["[1]", "[0]", "[4]"]


async def test_an_enqueue_waiting_on_an_uncommitted_holder_of_its_key_returns_it_once_committed(
    queue: JobQueue, pool: asyncpg.Pool
):
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        holder = await queue.enqueue(NewJob(task="t", idempotency_key="k"), connection=conn)
        waiting = asyncio.create_task(queue.enqueue(NewJob(task="t", idempotency_key="k")))
        await wait_until_blocked_on_a_lock(pool, queue.schema)
        await transaction.commit()
    result = await asyncio.wait_for(waiting, 5)

    assert result.deduplicated
    assert result.job.id == holder.job.id
    assert await count_jobs(pool, queue.schema) == 1


async def test_an_enqueue_waiting_on_an_uncommitted_holder_of_its_key_inserts_if_that_rolls_back(
    queue: JobQueue, pool: asyncpg.Pool
):
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await queue.enqueue(NewJob(task="t", idempotency_key="k"), connection=conn)
        waiting = asyncio.create_task(queue.enqueue(NewJob(task="t", idempotency_key="k")))
        await wait_until_blocked_on_a_lock(pool, queue.schema)
        await transaction.rollback()
    result = await asyncio.wait_for(waiting, 5)

    assert not result.deduplicated
    assert await count_jobs(pool, queue.schema) == 1
