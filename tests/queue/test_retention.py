"""Retention: pruning keeps pace in short batches, never waits on a lock, and goes by the
schema's key lifetime."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from taskrunner.queue import JobQueue, NewJob


async def finished_jobs(pool: asyncpg.Pool, schema: str, count: int, seconds_ago: float) -> None:
    await pool.execute(
        f'INSERT INTO "{schema}".jobs (task, status, started_at, finished_at) '
        "SELECT 't', 'succeeded', now() - make_interval(secs => $2 + 1), "
        "now() - make_interval(secs => $2) FROM generate_series(1, $1)",
        count,
        seconds_ago,
    )


async def count_jobs(pool: asyncpg.Pool, schema: str) -> int:
    return await pool.fetchval(f'SELECT count(*) FROM "{schema}".jobs')


async def test_one_prune_removes_every_finished_job_past_retention_however_many_finished(
    queue: JobQueue, pool: asyncpg.Pool
):
    await finished_jobs(pool, queue.schema, 25_000, seconds_ago=3600)

    assert await queue.delete_finished(older_than=60) == 25_000

    assert await count_jobs(pool, queue.schema) == 0


async def test_a_prune_stops_after_its_time_budget_between_batches(
    queue: JobQueue, pool: asyncpg.Pool
):
    await finished_jobs(pool, queue.schema, 300, seconds_ago=3600)

    assert await queue.delete_finished(older_than=60, batch=100, max_seconds=0) == 100
    assert await count_jobs(pool, queue.schema) == 200


async def test_pruning_passes_over_a_row_another_transaction_holds_instead_of_waiting(
    queue: JobQueue, pool: asyncpg.Pool
):
    await finished_jobs(pool, queue.schema, 3, seconds_ago=3600)
    held = await pool.fetchval(f'SELECT min(id) FROM "{queue.schema}".jobs')
    async with pool.acquire() as other, other.transaction():
        await other.execute(f'SELECT 1 FROM "{queue.schema}".jobs WHERE id = $1 FOR UPDATE', held)

        deleted = await asyncio.wait_for(queue.delete_finished(older_than=60), 5)

    assert deleted == 2
    assert await pool.fetchval(f'SELECT array_agg(id) FROM "{queue.schema}".jobs') == [held]


async def test_a_prune_without_a_threshold_goes_by_the_schemas_key_lifetime(
    queue: JobQueue, pool: asyncpg.Pool
):
    await finished_jobs(pool, queue.schema, 2, seconds_ago=600)
    assert await queue.idempotency_ttl() == 24 * 3600  # a new schema's

    assert await queue.delete_finished() == 0
    await queue.set_idempotency_ttl(300)
    assert await queue.delete_finished() == 2


async def test_setting_the_key_lifetime_reports_the_previous_one_only_when_it_changes(
    queue: JobQueue,
):
    assert await queue.set_idempotency_ttl(60) == 24 * 3600
    assert await queue.set_idempotency_ttl(60) is None
    assert await queue.idempotency_ttl() == 60


@pytest.mark.parametrize("seconds", [-1.0, float("inf"), float("nan")])
async def test_a_key_lifetime_that_cannot_be_stored_is_refused(queue: JobQueue, seconds: float):
    with pytest.raises(ValueError, match="idempotency_ttl"):
        await queue.set_idempotency_ttl(seconds)


async def test_an_enqueue_frees_an_expired_key_by_the_schemas_lifetime(
    queue: JobQueue, pool: asyncpg.Pool
):
    first = (await queue.enqueue(NewJob(task="t", args=b"[1]", idempotency_key="k"))).job
    await queue.cancel(first.id)
    await pool.execute(
        f"UPDATE \"{queue.schema}\".jobs SET finished_at = now() - interval '10 minutes'"
    )
    assert (await queue.enqueue(NewJob(task="t", args=b"[1]", idempotency_key="k"))).deduplicated

    await queue.set_idempotency_ttl(300)
    again = await queue.enqueue(NewJob(task="t", args=b"[1]", idempotency_key="k"))

    assert not again.deduplicated
    assert again.job.id != first.id
