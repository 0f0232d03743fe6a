"""Fresh databases, housekeeping between the untimed and the timed part, server facts."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def with_database(dsn: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def redact(dsn: str) -> str:
    return re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", dsn)


def safe_name(text: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", text.lower())[:60]


async def create_database(admin_dsn: str, dbname: str) -> str:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, dbname)


async def drop_database(admin_dsn: str, dbname: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_database(admin_dsn: str, dbname: str, keep: bool = False) -> AsyncIterator[str]:
    """CREATE DATABASE dbname, yield its DSN, drop it afterwards (unless keep)."""
    dsn = await create_database(admin_dsn, dbname)
    try:
        yield dsn
    finally:
        if not keep:
            await drop_database(admin_dsn, dbname)


async def settle(dsn: str) -> None:
    """Between an untimed fill and a timed run: fresh statistics, no dirty buffers.

    The same for every system: VACUUM ANALYZE of the whole database (so autovacuum does
    not pick the timed window to start) and a CHECKPOINT (so the timed run does not pay
    for the fill's writes).
    """
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM (ANALYZE)")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def server_facts(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        facts: dict[str, Any] = {"version": await conn.fetchval("SELECT version()")}
        for name in (
            "shared_buffers",
            "max_connections",
            "synchronous_commit",
            "fsync",
            "wal_level",
            "max_wal_size",
        ):
            facts[name] = await conn.fetchval(f"SHOW {name}")
        return facts
    finally:
        await conn.close()
