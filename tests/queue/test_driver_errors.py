"""Every driver error is translated at the queue's boundary: a lost connection is a
ConnectError, anything else the driver raises a DatabaseError."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from taskrunner.db import ResolvedDsn, connect
from taskrunner.errors import ConnectError, DatabaseError
from taskrunner.queue import (
    Completion,
    Failure,
    JobQueue,
    Lease,
    LeaseExtension,
    NewJob,
    translate_errors,
)

LEASE = Lease(job_id=1, lease_id=1)
VERBS: dict[str, Callable[[JobQueue], Awaitable[Any]]] = {
    "enqueue": lambda q: q.enqueue(NewJob(task="t")),
    "enqueue_many keyless": lambda q: q.enqueue_many([NewJob(task="t"), NewJob(task="u")]),
    "enqueue_many keyed": lambda q: q.enqueue_many(
        [NewJob(task="t", idempotency_key="a"), NewJob(task="t", idempotency_key="b")]
    ),
    "claim": lambda q: q.claim(["t"], limit=5, owner="w"),
    "complete_many": lambda q: q.complete_many([Completion(lease=LEASE)]),
    "fail_many": lambda q: q.fail_many([Failure(lease=LEASE, error="x")]),
    "release_many": lambda q: q.release_many([LEASE]),
    "extend_leases": lambda q: q.extend_leases([LeaseExtension(lease=LEASE, seconds=30)]),
    "get": lambda q: q.get(1),
    "get_many": lambda q: q.get_many([1, 2]),
    "list_jobs": lambda q: q.list_jobs(),
    "cancel": lambda q: q.cancel(1),
    "pause": lambda q: q.pause(1),
    "resume": lambda q: q.resume(1),
    "retry": lambda q: q.retry(1),
    "stats": lambda q: q.stats(),
    "count_queued": lambda q: q.count_queued(),
    "runnable_exists": lambda q: q.runnable_exists(["t"]),
    "next_run_at": lambda q: q.next_run_at(["t"]),
    "clear": lambda q: q.clear(),
    "rescue_expired": lambda q: q.rescue_expired(),
    "delete_finished": lambda q: q.delete_finished(),
    "idempotency_ttl": lambda q: q.idempotency_ttl(),
    "set_idempotency_ttl": lambda q: q.set_idempotency_ttl(60),
}


async def terminate(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    pid = conn.get_server_pid()
    assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)
    for _ in range(500):  # the server ends the backend asynchronously; poll up to 5 s
        if not await pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", pid
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} still there")


@pytest.mark.parametrize("verb", list(VERBS))
async def test_every_verb_on_a_connection_the_server_ended_raises_connect_error(
    target: ResolvedDsn, pool: asyncpg.Pool, schema: str, verb: str
):
    conn = await connect(target)
    queue = JobQueue(conn, schema)
    try:
        await VERBS[verb](queue)  # the connection works, and the statement is prepared
        await terminate(pool, conn)

        with pytest.raises(ConnectError):
            await VERBS[verb](queue)
        with pytest.raises(ConnectError):  # and again, now that the driver knows it closed
            await VERBS[verb](queue)
    finally:
        conn.terminate()


@translate_errors
async def raising(exc: BaseException) -> None:
    raise exc


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.InternalClientError("unexpected message"),
        asyncpg.exceptions.ProtocolError("protocol out of sync"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("connection is closed"),
        ConnectionResetError(104, "Connection reset by peer"),
        BrokenPipeError(32, "Broken pipe"),
        TimeoutError(),
        asyncpg.exceptions.AdminShutdownError(
            "terminating connection due to administrator command"
        ),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    ],
    ids=type,
)
async def test_a_driver_error_meaning_a_lost_connection_becomes_connect_error(exc: BaseException):
    with pytest.raises(ConnectError) as raised:
        await raising(exc)
    assert raised.value.__cause__ is exc


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        asyncpg.exceptions.DataError("invalid input for query argument $1"),
        asyncpg.exceptions.UniqueViolationError("duplicate key value"),
        asyncpg.exceptions.OutdatedSchemaCacheError("cached statement plan is invalid"),
    ],
    ids=type,
)
async def test_any_other_driver_error_becomes_database_error(exc: BaseException):
    with pytest.raises(DatabaseError) as raised:
        await raising(exc)
    assert not isinstance(raised.value, ConnectError)
    assert raised.value.__cause__ is exc
