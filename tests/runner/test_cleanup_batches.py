"""A cleanup goes in short batches that skip locked rows: it never blocks a claim and
never waits on a worker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from taskrunner import TaskRunner
from taskrunner.queue.cleanup import CleanupStore

BOUND = 5.0  # seconds: far more than any of these statements needs unblocked


async def insert(runner: TaskRunner, status: str, count: int) -> list[int]:
    rows = await runner.job_queue.db.fetch(
        f'INSERT INTO "{runner.schema}".jobs (task, status, created_at, finished_at) '
        f"SELECT 't', $1::text::\"{runner.schema}\".job_status, now() - interval '1 hour', "
        "CASE WHEN $1::text IN ('succeeded', 'failed', 'cancelled') "
        "THEN now() - interval '1 hour' END "
        "FROM generate_series(1, $2) RETURNING id",
        status,
        count,
    )
    return [r["id"] for r in rows]


async def test_a_claim_proceeds_while_a_cleanup_batch_holds_its_rows(runner: TaskRunner):
    await insert(runner, "queued", 10)
    async with runner.job_queue.db.acquire() as conn, conn.transaction():
        # One batch of a cleanup of queued jobs, in flight: its five rows are locked.
        store = CleanupStore(conn, runner.schema)
        removed, _ = await store._batch("queued", "remove", datetime.now(UTC), 5, 0)
        assert removed == 5

        claimed = await asyncio.wait_for(runner.job_queue.claim(["t"], limit=10, owner="w"), BOUND)

        assert len(claimed) == 5  # the other five, at once


async def test_a_cleanup_passes_over_a_row_a_worker_holds_instead_of_waiting(runner: TaskRunner):
    ids = await insert(runner, "succeeded", 3)
    async with runner.job_queue.db.acquire() as other, other.transaction():
        await other.execute(
            f'SELECT 1 FROM "{runner.schema}".jobs WHERE id = $1 FOR UPDATE', ids[0]
        )

        counts = await asyncio.wait_for(runner.cleanup(succeeded="remove"), BOUND)

    assert counts["succeeded"] == 2
    assert [j.id for j in await runner.list_jobs()] == [ids[0]]
