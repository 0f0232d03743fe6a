"""asyncpg connections set up the way the queue expects them.

jsonb travels as raw bytes in both directions: the runner encodes and decodes with
msgspec, so the driver never parses JSON.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from taskrunner.db.dsn import ResolvedDsn
from taskrunner.errors import ConnectError

CONNECT_TIMEOUT = 10.0


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
    reason = "timed out" if isinstance(exc, asyncio.TimeoutError | TimeoutError) else str(exc)
    return ConnectError(
        f"could not connect to PostgreSQL at {target.redacted} (from {target.source}): "
        f"{reason or type(exc).__name__}"
    )


# Session settings of a worker's own connections (acks, lease renewal). Queue tables
# swing between empty and huge faster than statistics follow, and a stale estimate turns
# a statement on a few rows into a sequential scan over all history (an ack of three
# jobs took 2 ms that way); an index always serves these statements. Their plans do not
# depend on the parameters, so each is planned once (generic) instead of on every
# execution, which was a quarter of the claim's time in the database.
HOT_PATH_SESSION_SETTINGS = {"enable_seqscan": "off", "plan_cache_mode": "force_generic_plan"}

# The claim connection's: the same, and:
#
# Claims commit without waiting for the WAL flush. A claim lost in a server crash only
# puts its jobs back to queued (at least once, as after any crash), and its lease ids are
# random, so none is ever issued again: fencing holds. Acks and renewals stay durable, and
# a durable ack's flush covers the earlier claim, so a finished job never comes back.
CLAIM_SESSION_SETTINGS = {**HOT_PATH_SESSION_SETTINGS, "synchronous_commit": "off"}


async def connect(
    target: ResolvedDsn,
    *,
    timeout: float = CONNECT_TIMEOUT,
    server_settings: dict[str, str] | None = None,
    raw_jsonb: bool = True,
) -> asyncpg.Connection:
    """One connection (for LISTEN, claims, acks, migrations, lease renewal). With
    `raw_jsonb=False` jsonb keeps asyncpg's C text codec (str values, no Python call per
    value), which the worker's hot-path connections prefer; the queue accepts both."""
    try:
        conn = await asyncio.wait_for(
            asyncpg.connect(target.dsn, timeout=timeout, server_settings=server_settings),
            timeout,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise _connect_error(target, exc) from exc
    if raw_jsonb:
        await init_connection(conn)
    return conn


async def create_pool(
    target: ResolvedDsn,
    *,
    min_size: int = 1,
    max_size: int = 10,
    timeout: float = CONNECT_TIMEOUT,
    statement_cache_size: int = 1024,
    **kwargs: Any,
) -> asyncpg.Pool:
    """A pool; set `statement_cache_size=0` behind PgBouncer in transaction mode."""
    try:
        pool = await asyncio.wait_for(
            asyncpg.create_pool(
                target.dsn,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                init=init_connection,
                reset=_skip_session_reset,
                statement_cache_size=statement_cache_size,
                **kwargs,
            ),
            timeout,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise _connect_error(target, exc) from exc
    return pool
