"""Backpressure: while outcomes cannot be written, a worker stops claiming once more than
its bound of them wait, and claims again once they are written. (Finished work that is
never acked only runs again elsewhere; claiming more of it helps no one.)"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from worker_helpers import background_worker, eventually

from taskrunner import TaskRunner

MAX_UNWRITTEN = 4
CONCURRENCY = 2


@pytest.fixture
async def acks_on_hold(pg_dsn: str, tr: TaskRunner) -> AsyncIterator[asyncpg.Connection]:
    """While the returned connection holds its advisory lock, every ack of the schema's
    jobs waits for it (a trigger takes the lock too): acks hang, claims do not."""
    key = random.randrange(1, 2**31)
    schema = tr.schema
    await tr.job_queue.db.execute(
        f"""
        CREATE FUNCTION "{schema}".hold_acks() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_advisory_xact_lock_shared({key}); RETURN NEW; END $$;
        CREATE TRIGGER hold_acks BEFORE UPDATE ON "{schema}".jobs FOR EACH ROW
            WHEN (OLD.status = 'running' AND NEW.status <> 'running')
            EXECUTE FUNCTION "{schema}".hold_acks();
        """
    )
    holder = await asyncpg.connect(pg_dsn)
    await holder.execute("SELECT pg_advisory_lock($1)", key)
    try:
        yield holder
    finally:
        await holder.close()


async def running_rows(tr: TaskRunner) -> int:
    count: int = await tr.job_queue.db.fetchval(
        f"SELECT count(*) FROM \"{tr.schema}\".jobs WHERE status = 'running'"
    )
    return count


async def stays_at_most(tr: TaskRunner, bound: int, seconds: float) -> None:
    """Watch the running rows for `seconds`: they never exceed `bound`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert await running_rows(tr) <= bound
        await asyncio.sleep(0.02)  # the polling interval of the watch


async def test_a_worker_whose_acks_cannot_be_written_stops_claiming_at_its_bound(
    tr: TaskRunner, acks_on_hold: asyncpg.Connection
):
    @tr.task
    async def instant(i: int) -> int:
        return i

    jobs = await tr.enqueue_many(instant, [(i,) for i in range(40)])
    bound = MAX_UNWRITTEN + 2 * CONCURRENCY  # waiting outcomes, slots, one claim more

    async with background_worker(
        tr, concurrency=CONCURRENCY, max_unwritten=MAX_UNWRITTEN, poll_interval=0.02
    ) as bg:
        await eventually(
            lambda: bg.worker._acks is not None and bg.worker._acks.backlog > MAX_UNWRITTEN,
            message="outcomes waiting",
        )
        await stays_at_most(tr, bound, seconds=1.0)
        await acks_on_hold.execute("SELECT pg_advisory_unlock_all()")
        for job in jobs:
            assert await tr.result(job.id, timeout=20) == job.args[0]
