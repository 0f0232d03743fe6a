"""Keyed batches that overlap, enqueued at once in different orders, never deadlock."""

from __future__ import annotations

import asyncio
import random

import asyncpg

from taskrunner.queue import JobQueue, NewJob

ROUNDS = 15
KEYS_PER_BATCH = 200
BATCHES_PER_ROUND = 4


async def test_overlapping_keyed_batches_in_different_orders_all_succeed_with_one_job_per_key(
    pool: asyncpg.Pool, schema: str
):
    queue = JobQueue(pool, schema)
    rng = random.Random(8)
    for round_no in range(ROUNDS):
        keys = [f"r{round_no}-k{i}" for i in range(KEYS_PER_BATCH)]
        orders = [keys, keys[::-1]] + [
            rng.sample(keys, len(keys)) for _ in range(BATCHES_PER_ROUND - 2)
        ]
        batches = [
            [NewJob(task="t", args=f'["{key}"]'.encode(), idempotency_key=key) for key in order]
            for order in orders
        ]

        results = await asyncio.wait_for(
            asyncio.gather(*(queue.enqueue_many(batch) for batch in batches)), 30
        )

        for order, result in zip(orders, results, strict=True):
            assert [r.job.idempotency_key for r in result] == order  # input order kept
        ids_by_key = {key: {r[i].job.id for r in results for i in range(len(keys))
                            if r[i].job.idempotency_key == key} for key in keys}  # fmt: skip
        assert all(len(ids) == 1 for ids in ids_by_key.values()), ids_by_key
    stored = await pool.fetchval(
        f'SELECT count(*) FROM "{schema}".jobs WHERE idempotency_key IS NOT NULL'
    )
    assert stored == ROUNDS * KEYS_PER_BATCH
