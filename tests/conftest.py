"""Shared fixtures: one PostgreSQL per session, one fresh schema per test.

The server is the first that answers of: $TASKRUNNER_TEST_DSN, $TASKRUNNER_DSN,
$DATABASE_URL, a local server at 127.0.0.1:5432 (user postgres), else an embedded
PostgreSQL started once for the session.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from taskrunner import TaskRunner
from taskrunner.db import Migrator, ResolvedDsn, create_pool
from taskrunner.db import embedded as embedded_pg
from taskrunner.queue import JobQueue

LOCAL_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
SCHEMA_PREFIX = "t_"


def _reachable(dsn: str) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except Exception:
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The DSN every test of this session uses."""
    for var in ("TASKRUNNER_TEST_DSN", "TASKRUNNER_DSN", "DATABASE_URL"):
        if os.environ.get(var):
            dsn = os.environ[var]
            break
    else:
        dsn = LOCAL_DSN if _reachable(LOCAL_DSN) else ""
    if not dsn:
        dsn = embedded_pg.start(Path(tmp_path_factory.mktemp("embedded-pg")))
    yield dsn
    leaked = asyncio.run(_schemas_left(dsn))
    assert not leaked, f"tests left schemas behind: {leaked}"


async def _schemas_left(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"{SCHEMA_PREFIX}%"
        )
    finally:
        await conn.close()
    return [r["nspname"] for r in rows if r["nspname"] in _created_schemas]


_created_schemas: set[str] = set()


# Set when the suite runs through a pooler in transaction mode (tests/pgbouncer does):
# every runner is made without a prepared-statement cache, as README tells users to.
BEHIND_POOLER = os.environ.get("TASKRUNNER_TEST_POOLER") == "1"
if BEHIND_POOLER:
    # The tests' own connections too: a pooler hands the prepared statements one client
    # left on a server connection to the next.
    for made in (TaskRunner.__init__, asyncpg.connect):
        assert made.__kwdefaults__ is not None
        made.__kwdefaults__["statement_cache_size"] = 0


@pytest.fixture
def target(pg_dsn: str) -> ResolvedDsn:
    return ResolvedDsn(pg_dsn, "test", behind_pooler=BEHIND_POOLER)


def need_binary(name: str, why: str) -> str:
    """The path of a system program a test needs. Missing, the test is skipped with the
    reason, or fails where every test must run ($TASKRUNNER_REQUIRE_SYSTEM_TOOLS=1, as
    in CI)."""
    found = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/local/sbin") if (p := Path(d) / name).exists()),
        None,
    )
    if found:
        return found
    message = f"{name} is not installed ({why})"
    if os.environ.get("TASKRUNNER_REQUIRE_SYSTEM_TOOLS") == "1":
        pytest.fail(message + "; $TASKRUNNER_REQUIRE_SYSTEM_TOOLS=1 makes this a failure")
    pytest.skip(message)


def new_schema_name() -> str:
    name = f"{SCHEMA_PREFIX}{uuid.uuid4().hex[:16]}"
    _created_schemas.add(name)
    return name


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def bare_schema(pg_dsn: str) -> AsyncIterator[str]:
    """A schema name of this test's own, not created yet; dropped afterwards."""
    schema = new_schema_name()
    yield schema
    await drop_schema(pg_dsn, schema)


@pytest.fixture
async def schema(pg_dsn: str, bare_schema: str) -> str:
    """A schema of this test's own, migrated."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        await Migrator(bare_schema).migrate(conn)
    finally:
        await conn.close()
    return bare_schema


@pytest.fixture
async def pool(target: ResolvedDsn) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(target, min_size=1, max_size=12)
    yield pool
    await pool.close()


@pytest.fixture
def queue(pool: asyncpg.Pool, schema: str) -> JobQueue:
    return JobQueue(pool, schema)
