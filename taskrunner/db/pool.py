"""asyncpg connections set up the way the queue expects them.

jsonb travels as raw bytes in both directions: the runner encodes and decodes with
msgspec, so the driver never parses JSON.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from taskrunner.db.dsn import ResolvedDsn, redact_text
from taskrunner.errors import ConnectError

log = logging.getLogger("taskrunner")
T = TypeVar("T")

CONNECT_TIMEOUT = 10.0  # one try
CONNECT_WAIT = 10.0  # all tries of a one-off command while the server is unreachable


def _encode_jsonb(value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return b"\x01" + data


def _decode_jsonb(data: bytes) -> bytes:
    return data[1:]


async def init_connection(conn: asyncpg.Connection) -> None:
    """Install the raw jsonb codec on a connection (pool init hook)."""
    await conn.set_type_codec(
        "jsonb",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        schema="pg_catalog",
        format="binary",
    )


async def _skip_session_reset(_conn: asyncpg.Connection) -> None:
    """The queue sets no session state (no SET, LISTEN or advisory session locks on pooled
    connections), so asyncpg's reset query on every release is a wasted round trip."""


def _connect_error(target: ResolvedDsn, exc: BaseException) -> ConnectError:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        reason = "timed out"
    elif isinstance(exc, _BAD_DSN):  # the driver's parsing: a port that is no port ...
        reason = f"the DSN is not valid: {exc}"
    else:
        reason = str(exc) or type(exc).__name__
    return ConnectError(
        f"could not connect to PostgreSQL at {target.redacted} (from {target.source}): "
        + redact_text(reason, target.dsn)
    )


# Failures to connect that the next try may not see: nothing listens yet, the server is
# starting or shutting down, the network is down. Wrong passwords, unknown databases or
# bad options are not among them: they fail at once.
_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
)
# asyncpg parses the DSN itself and lets int() and the socket layer speak for it: a port
# like "notaport" is a ValueError, one like 99999 an OverflowError.
_BAD_DSN = (ValueError, OverflowError)
_CONNECT_FAILURES = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    TimeoutError,
    *_BAD_DSN,
)

# The backoff between tries: 0.2 s doubling up to 5 s, with up to 20 % jitter.
_FIRST_RETRY = 0.2
_MAX_RETRY = 5.0


async def _until_reachable(
    target: ResolvedDsn,
    attempt: Callable[[float], Awaitable[T]],
    *,
    timeout: float,
    wait: float | None,
) -> T:
    """Run `attempt` (given its own timeout) until it connects. While the server is
    unreachable it tries again with backoff, one log line per try, for up to `wait`
    seconds in all (None: until it comes); other failures end it at once."""
    loop = asyncio.get_running_loop()
    deadline = None if wait is None else loop.time() + wait
    tries = 0
    while True:
        tries += 1
        try:
            # Not wait_for: on Python 3.11 a cancel that comes as the attempt connects
            # drops its result, and the connection with it, unclosed. Within the task,
            # the cancel ends the attempt, whose driver closes what it opened.
            async with asyncio.timeout(timeout):
                return await attempt(timeout)
        except _CONNECT_FAILURES as exc:
            error = _connect_error(target, exc)
            if not isinstance(exc, _UNREACHABLE):
                raise error from exc
            delay = min(_MAX_RETRY, _FIRST_RETRY * 2 ** min(tries - 1, 10))
            delay *= 1 + random.uniform(0, 0.2)
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    raise error from exc
                delay = min(delay, left)
            log.warning("%s; try %d failed, trying again in %.1fs", error, tries, delay)
            await asyncio.sleep(delay)


# Every connection of a worker notices a dead peer within seconds: the server drops a
# client that stopped answering (keepalives, and unacknowledged data after
# tcp_user_timeout), and ends a statement that runs too long; the client gives up on a
# command after WORKER_COMMAND_TIMEOUT (asyncpg's command_timeout), which the queue
# reports as a lost connection. Worker statements take milliseconds; the limits are far
# above any of them.
WORKER_COMMAND_TIMEOUT = 15.0
WORKER_SESSION_SETTINGS = {
    "statement_timeout": "10s",
    "idle_in_transaction_session_timeout": "30s",
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "10000",  # milliseconds
}

# Session settings of a worker's own connections (acks, lease renewal). Queue tables
# swing between empty and huge faster than statistics follow, and a stale estimate turns
# a statement on a few rows into a sequential scan over all history (an ack of three
# jobs took 2 ms that way); an index always serves these statements. Their plans do not
# depend on the parameters, so each is planned once (generic) instead of on every
# execution, which was a quarter of the claim's time in the database.
HOT_PATH_SESSION_SETTINGS = {
    **WORKER_SESSION_SETTINGS,
    "enable_seqscan": "off",
    "plan_cache_mode": "force_generic_plan",
}

# The claim connection's: the same, and its claims commit durably. No handler may start
# before its claim is durable: a claim lost in a server crash would put its jobs back to
# queued under the same attempt number while their first handlers still ran, and another
# worker would run them at the same time.
#
# The claim's own synchronous commit is the guarantee: the claim statement returns only
# once its commit record is flushed (on the standbys too, with synchronous replication),
# and the worker starts handlers only after it returns. It is also the cheapest one found:
# it costs one WAL flush per claim, which concurrent commits share, and no round trip.
# Committing the claim asynchronously and then waiting for a later synchronous commit
# (WAL is flushed in order, so that commit's flush covers the claim) needs either a
# flush of its own (one more round trip, and one more flush) or the next ack (which puts
# the ack on the claim's path); both were measured slower (benchmarks/README.md). Behind
# a pooler no session settings are sent, and the server's setting applies.
CLAIM_SESSION_SETTINGS = {**HOT_PATH_SESSION_SETTINGS, "synchronous_commit": "on"}


async def connect(
    target: ResolvedDsn,
    *,
    timeout: float = CONNECT_TIMEOUT,
    server_settings: dict[str, str] | None = None,
    raw_jsonb: bool = True,
    command_timeout: float | None = None,
    wait: float | None = 0.0,
) -> asyncpg.Connection:
    """One connection (for LISTEN, claims, acks, migrations, lease renewal). With
    `raw_jsonb=False` jsonb keeps asyncpg's C text codec (str values, no Python call per
    value), which the worker's hot-path connections prefer; the queue accepts both.
    While the server is unreachable it tries again for up to `wait` seconds (None:
    until it answers); each try has `timeout`."""

    extra: dict[str, Any] = {}
    if target.behind_pooler:
        server_settings = None
        extra["statement_cache_size"] = 0

    async def attempt(limit: float) -> asyncpg.Connection:
        return await asyncpg.connect(
            target.dsn,
            timeout=limit,
            server_settings=server_settings,
            command_timeout=command_timeout,
            **extra,
        )

    conn = await _until_reachable(target, attempt, timeout=timeout, wait=wait)
    if raw_jsonb:
        try:
            await init_connection(conn)
        except BaseException:  # a cancel too (a worker stopping as it starts): not leaked
            conn.terminate()
            raise
    return conn


async def create_pool(
    target: ResolvedDsn,
    *,
    min_size: int = 1,
    max_size: int = 10,
    timeout: float = CONNECT_TIMEOUT,
    statement_cache_size: int = 1024,
    wait: float | None = CONNECT_WAIT,
    **kwargs: Any,
) -> asyncpg.Pool:
    """A pool; behind a pooler in transaction mode (`target.behind_pooler`) without
    prepared statements or start-up settings. While the server is unreachable it tries
    again for up to `wait` seconds (default 10; None: until it answers, as a worker
    starting before its database does)."""
    if target.behind_pooler:
        statement_cache_size = 0
        kwargs.pop("server_settings", None)

    async def attempt(limit: float) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            target.dsn,
            min_size=min_size,
            max_size=max_size,
            timeout=limit,
            init=init_connection,
            reset=_skip_session_reset,
            statement_cache_size=statement_cache_size,
            **kwargs,
        )

    pool: asyncpg.Pool = await _until_reachable(target, attempt, timeout=timeout, wait=wait)
    return pool


async def close_quickly(conn: asyncpg.Connection, timeout: float = 1.0) -> None:
    """Close politely if the server answers within `timeout`, else drop the socket: a
    worker shutting down with its database unreachable must not wait for it."""
    if conn.is_closed():
        return
    closing = asyncio.ensure_future(conn.close())
    await asyncio.wait({closing}, timeout=timeout)  # not wait_for: it waits for the cancel
    if not closing.done() or closing.exception() is not None:
        closing.cancel()
        conn.terminate()
