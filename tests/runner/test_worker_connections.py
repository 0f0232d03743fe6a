"""A worker's connections notice a dead peer within seconds, and its claims are durable
before any handler starts."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from worker_helpers import background_worker, endless_task

from taskrunner import TaskRunner
from taskrunner.db import WORKER_COMMAND_TIMEOUT
from taskrunner.queue import NewJob

TIMEOUTS = {
    "statement_timeout": "10s",
    "tcp_keepalives_idle": "5",  # seconds
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "10000",  # milliseconds
}


async def settings_of(conn: Any) -> dict[str, str]:
    return {name: await conn.fetchval(f"SHOW {name}") for name in [*TIMEOUTS, "synchronous_commit"]}


def command_timeout(conn: asyncpg.Connection) -> float | None:
    return conn._config.command_timeout  # type: ignore[no-any-return]  # asyncpg has no getter


async def test_a_workers_own_connections_have_statement_and_command_timeouts_and_keepalives(
    tr: TaskRunner,
):
    @tr.task
    async def quick() -> None:
        pass

    endless = endless_task(tr)
    # Not claiming ahead: once the slot is full, no claim runs on the claim connection.
    async with background_worker(tr, concurrency=1, shutdown_timeout=0.2, claim_ahead=0) as bg:
        await tr.wait((await quick.enqueue()).id, timeout=10)  # the ack connection exists now
        await endless.task.enqueue()
        await asyncio.wait_for(endless.started.wait(), 10)  # one slot, full: no claim runs
        worker = bg.worker
        assert worker._claimer is not None
        assert worker._acks is not None
        connections = {
            "claims": worker._claimer.db,
            "acks": worker._acks.connection,
            "notifications": worker.notifications.connection,
        }

        for purpose, conn in connections.items():
            found = await settings_of(conn)
            assert {k: found[k] for k in TIMEOUTS} == TIMEOUTS, purpose
            assert command_timeout(conn) == WORKER_COMMAND_TIMEOUT, purpose


async def test_a_workers_claims_commit_durably(tr: TaskRunner):
    endless = endless_task(tr)
    async with background_worker(tr, concurrency=1, shutdown_timeout=0.2) as bg:
        await endless.task.enqueue()
        await asyncio.wait_for(endless.started.wait(), 10)
        assert bg.worker._claimer is not None

        found = await settings_of(bg.worker._claimer.db)

    assert found["synchronous_commit"] == "on"


async def test_a_runner_opened_by_its_worker_gives_its_pool_the_workers_timeouts(
    pg_dsn: str, schema: str
):
    runner = TaskRunner(pg_dsn, schema=schema)
    release = asyncio.Event()
    started = asyncio.Event()

    @runner.task
    async def hold() -> None:
        started.set()
        await release.wait()

    async with TaskRunner(pg_dsn, schema=schema) as producer:
        await producer.job_queue.enqueue(NewJob(task=hold.name))
    working = asyncio.create_task(
        runner.run_worker(concurrency=1, stop_when_idle=True, handle_signals=False)
    )
    try:
        await asyncio.wait_for(started.wait(), 10)
        pool = runner.job_queue.db
        async with pool.acquire() as conn:
            found = await settings_of(conn)
            timeout = command_timeout(conn)
    finally:
        release.set()
        await asyncio.wait_for(working, 20)

    assert {k: found[k] for k in TIMEOUTS} == TIMEOUTS
    assert timeout == WORKER_COMMAND_TIMEOUT


async def test_a_runner_opened_by_the_application_keeps_no_statement_timeout(
    pg_dsn: str, schema: str
):
    async with TaskRunner(pg_dsn, schema=schema) as runner:
        assert await runner.job_queue.db.fetchval("SHOW statement_timeout") == "0"
