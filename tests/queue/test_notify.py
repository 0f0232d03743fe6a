"""Wake-ups: enqueues notify "<schema>.jobs" with the queue name, running-job cancels
notify "<schema>.cancel" with the job id, each delivered when its transaction commits.

A notification that must *not* arrive is checked without waiting: a sentinel is sent
after it, and the sentinel must be the next thing to arrive (delivery is in commit order).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from conftest import drop_schema, new_schema_name

from taskrunner.db import Migrator
from taskrunner.queue import (
    Failure,
    JobQueue,
    Listener,
    NewJob,
    cancel_channel,
    jobs_channel,
)

TIMEOUT = 5.0


class Inbox:
    """Notifications of one LISTEN connection, as (channel, payload), in arrival order."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.received: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    def _on_notify(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        self.received.put_nowait((channel, payload))

    async def listen(self, *channels: str) -> None:
        for channel in channels:
            await self.conn.add_listener(channel, self._on_notify)

    async def next(self) -> tuple[str, str]:
        return await asyncio.wait_for(self.received.get(), TIMEOUT)

    async def until(self, sentinel: tuple[str, str]) -> list[tuple[str, str]]:
        """Everything that arrives before `sentinel`."""
        seen = []
        while (item := await self.next()) != sentinel:
            seen.append(item)
        return seen


@pytest.fixture
async def listen_conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_dsn)
    yield conn
    await conn.close()


@pytest.fixture
async def inbox(queue: JobQueue, listen_conn: asyncpg.Connection) -> Inbox:
    box = Inbox(listen_conn)
    await box.listen(queue.jobs_channel, queue.cancel_channel)
    return box


async def send_sentinel(queue: JobQueue) -> tuple[str, str]:
    await queue.enqueue(NewJob(task="sentinel", queue="sentinel"))
    return (queue.jobs_channel, "sentinel")


def test_the_channels_are_named_after_the_schema():
    assert jobs_channel("shop") == "shop.jobs"
    assert cancel_channel("shop") == "shop.cancel"


async def test_a_listener_hears_the_queue_name_when_a_job_is_enqueued(
    queue: JobQueue, listen_conn: asyncpg.Connection
):
    heard: list[str] = []
    woken = asyncio.Event()

    def wake(payload: str) -> None:
        heard.append(payload)
        woken.set()

    listener = Listener(listen_conn, {queue.jobs_channel: wake})
    await listener.start()
    try:
        await queue.enqueue(NewJob(task="t", queue="emails"))
        await asyncio.wait_for(woken.wait(), TIMEOUT)
    finally:
        await listener.stop()
    assert heard == ["emails"]


async def test_a_raw_listen_connection_hears_enqueues_on_the_jobs_channel(
    queue: JobQueue, inbox: Inbox
):
    await queue.enqueue(NewJob(task="t", queue="reports"))
    assert await inbox.next() == (queue.jobs_channel, "reports")


async def test_a_batch_notifies_each_of_its_queues_once(queue: JobQueue, inbox: Inbox):
    await queue.enqueue_many([NewJob(task="t", queue=q) for q in ("a", "b", "a", "a", "b", "c")])
    sentinel = await send_sentinel(queue)

    heard = await inbox.until(sentinel)
    assert sorted(heard) == [(queue.jobs_channel, q) for q in ("a", "b", "c")]


@pytest.mark.parametrize(
    "batch",
    [
        [NewJob(task="t", queue="q1")],
        [NewJob(task="t", queue="q1", args=f"[{i}]".encode()) for i in range(3)],
        [NewJob(task="t", queue="q1"), NewJob(task="u", queue="q1")],
        [NewJob(task="t", queue="q1", idempotency_key="k")],
    ],
    ids=["one-job", "uniform-batch", "mixed-batch", "keyed"],
)
async def test_every_kind_of_enqueue_notifies_its_queue_once(
    queue: JobQueue, inbox: Inbox, batch: list[NewJob]
):
    await queue.enqueue_many(batch)
    sentinel = await send_sentinel(queue)

    assert await inbox.until(sentinel) == [(queue.jobs_channel, "q1")]


async def test_enqueueing_a_job_that_is_not_due_yet_notifies_nobody(queue: JobQueue, inbox: Inbox):
    await queue.enqueue(NewJob(task="t", queue="later", delay=3600))
    sentinel = await send_sentinel(queue)
    assert await inbox.until(sentinel) == []


async def test_a_deduplicated_enqueue_notifies_nobody(queue: JobQueue, inbox: Inbox):
    await queue.enqueue(NewJob(task="t", queue="k", idempotency_key="k"))
    assert await inbox.next() == (queue.jobs_channel, "k")

    again = await queue.enqueue(NewJob(task="t", queue="k", idempotency_key="k"))

    assert again.deduplicated
    sentinel = await send_sentinel(queue)
    assert await inbox.until(sentinel) == []


async def test_an_enqueue_in_a_callers_transaction_notifies_only_when_it_commits(
    queue: JobQueue, pool: asyncpg.Pool, inbox: Inbox
):
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await queue.enqueue(NewJob(task="t", queue="in-tx"), connection=conn)
        sentinel = await send_sentinel(queue)
        assert await inbox.until(sentinel) == []  # nothing before the commit

        await transaction.commit()

    assert await inbox.next() == (queue.jobs_channel, "in-tx")


async def test_an_enqueue_in_a_callers_transaction_that_rolls_back_notifies_nobody(
    queue: JobQueue, pool: asyncpg.Pool, inbox: Inbox
):
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        await queue.enqueue(NewJob(task="t", queue="in-tx"), connection=conn)
        await transaction.rollback()
    sentinel = await send_sentinel(queue)
    assert await inbox.until(sentinel) == []


async def test_cancelling_a_running_job_notifies_the_cancel_channel_with_its_id(
    queue: JobQueue, inbox: Inbox
):
    await queue.enqueue(NewJob(task="t"))
    (job,) = await queue.claim(["t"], limit=1, owner="w")
    await inbox.next()  # the enqueue

    assert await queue.cancel(job.id)

    assert await inbox.next() == (queue.cancel_channel, str(job.id))


async def test_cancelling_a_waiting_job_does_not_notify_the_cancel_channel(
    queue: JobQueue, inbox: Inbox
):
    waiting, running = (
        r.job for r in await queue.enqueue_many([NewJob(task="waits"), NewJob(task="runs")])
    )
    await queue.claim(["runs"], limit=1, owner="w")
    await inbox.next()  # the enqueue

    await queue.cancel(waiting.id)
    await queue.cancel(running.id)

    assert await inbox.next() == (queue.cancel_channel, str(running.id))


async def test_resuming_a_job_wakes_its_queue(queue: JobQueue, inbox: Inbox):
    job = (await queue.enqueue(NewJob(task="t", queue="paused-q"))).job
    await queue.pause(job.id)
    await inbox.next()  # the enqueue

    await queue.resume(job.id)

    assert await inbox.next() == (queue.jobs_channel, "paused-q")


async def test_retrying_a_job_wakes_its_queue(queue: JobQueue, inbox: Inbox):
    job = (await queue.enqueue(NewJob(task="t", queue="retry-q"))).job
    (claimed,) = await queue.claim(["t"], limit=1, owner="w")
    await queue.cancel(job.id)
    await queue.fail_many([Failure(lease=claimed.lease, error="cancelled while running")])
    assert await inbox.until((queue.cancel_channel, str(job.id))) == [
        (queue.jobs_channel, "retry-q")
    ]

    await queue.retry(job.id)

    assert await inbox.next() == (queue.jobs_channel, "retry-q")


async def test_a_stopped_listener_hears_nothing_more(
    queue: JobQueue, listen_conn: asyncpg.Connection, inbox: Inbox
):
    heard: list[str] = []
    listener = Listener(listen_conn, {queue.jobs_channel: heard.append})
    await listener.start()
    await queue.enqueue(NewJob(task="t", queue="first"))
    await inbox.next()

    await listener.stop()
    await queue.enqueue(NewJob(task="t", queue="second"))
    await inbox.next()

    assert heard == ["first"]


async def test_enqueues_in_another_schema_are_not_heard_on_this_schemas_channel(
    queue: JobQueue, pool: asyncpg.Pool, pg_dsn: str, inbox: Inbox
):
    other_schema = new_schema_name()
    try:
        async with pool.acquire() as conn:
            await Migrator(other_schema).migrate(conn)
        other = JobQueue(pool, other_schema)
        await other.enqueue(NewJob(task="t", queue="elsewhere"))
        sentinel = await send_sentinel(queue)
        assert await inbox.until(sentinel) == []
    finally:
        await drop_schema(pg_dsn, other_schema)
