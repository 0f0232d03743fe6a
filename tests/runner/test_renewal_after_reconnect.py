"""Lease renewal across a lost connection: a renewal that did not get through is tried
again within a fraction of a second, on a new connection, instead of a whole renewal
interval later, so a server restart or a terminated backend does not push every held
lease past its fence time (which stops every handler of the worker)."""

from __future__ import annotations

import asyncio
import time

from worker_helpers import eventually

from taskrunner import TaskRunner
from taskrunner.queue import NewJob
from taskrunner.runner.leases import LeaseKeeper

LEASE = 6.0  # renewed every 2 s


async def test_a_renewal_cut_off_by_a_terminated_connection_lands_at_once_on_a_new_one(
    tr: TaskRunner,
):
    loop = asyncio.get_running_loop()
    keeper = LeaseKeeper(
        tr.target,
        tr.schema,
        on_cancel_requested=lambda _job_id: None,
        on_lost=lambda _lease: None,
        owner_loop=loop,
    )
    await tr.job_queue.enqueue_many([NewJob(task="t")])
    (job,) = await tr.job_queue.claim(["t"], limit=1, owner="test", lease=LEASE)
    await asyncio.to_thread(keeper.start)
    try:
        keeper.hold_many([(job.lease, LEASE)], since=time.monotonic())
        first = keeper.fence_at(job.id)
        await eventually(
            lambda: keeper.fence_at(job.id) > first, timeout=10, message="a first renewal"
        )
        renewed_at = time.monotonic()
        queue = keeper._queue
        assert queue is not None
        await tr.job_queue.db.execute("SELECT pg_terminate_backend($1)", queue.db.get_server_pid())
        second = keeper.fence_at(job.id)

        await eventually(
            lambda: keeper.fence_at(job.id) > second,
            timeout=10,
            message="a renewal on a new connection",
        )

        # The renewal due an interval after the first fails on the dead connection and
        # is tried again at once: it lands well before a second interval has passed.
        assert time.monotonic() - renewed_at < 1.5 * LEASE / 3
    finally:
        await asyncio.to_thread(keeper.stop)
