"""Shared fixtures: one PostgreSQL per session, one fresh schema per test.

The server is the first that answers of: $TASKRUNNER_TEST_DSN, $TASKRUNNER_DSN,
$DATABASE_URL, a local server at 127.0.0.1:5432 (user postgres), else an embedded
PostgreSQL started once for the session.

The suite runs in parallel (pytest-xdist, `-n auto` in pyproject's addopts): the hooks
below pick the number of worker processes and give each session a temporary folder of
its own. Run it serially with `-n 0`.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
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


# ---- parallel runs --------------------------------------------------------------------

# Most tests wait (on PostgreSQL, on subprocesses, on leases), so more workers than cores
# pay off: measured on 2 cores, 4 workers run the suite fastest (see README).
WORKERS_PER_CORE = 2
MIN_WORKERS = 4
MAX_WORKERS = 8


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """How many workers `-n auto` starts: none when the command line names single tests
    (`tests/x.py::test_y`), where starting workers would cost more than it saves; else
    twice the cores, at least 4 and at most 8. $PYTEST_XDIST_AUTO_NUM_WORKERS overrides."""
    forced = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    if forced:
        return int(forced)
    if config.args and all("::" in arg for arg in config.args):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(MIN_WORKERS, min(MAX_WORKERS, WORKERS_PER_CORE * (cores or 1)))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """A temporary folder of this session's own unless --basetemp is given: pytest's
    shared /tmp/pytest-of-<user> is cleaned by every session that starts or ends, which
    races with other sessions running at the same time. xdist workers get a subfolder of
    their controller's. The folder is removed at exit when every test passed."""
    if config.option.basetemp or hasattr(config, "workerinput"):
        return
    basetemp = Path(tempfile.mkdtemp(prefix="taskrunner-pytest-"))
    config.option.basetemp = str(basetemp)
    # Registered before any embedded PostgreSQL is started, so it runs after they stop.
    atexit.register(_remove_when_passed, config, basetemp)


def _remove_when_passed(config: pytest.Config, basetemp: Path) -> None:
    if getattr(config, "_taskrunner_exitstatus", None) == 0:
        shutil.rmtree(basetemp, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._taskrunner_exitstatus = exitstatus  # type: ignore[attr-defined]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In parallel, tests marked slow are handed out first, so none of them starts last
    and keeps one worker busy while the others are done. The order is the same on every
    worker, as xdist requires. And xdist_group marks are made to count again."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)
        if config.getvalue("loadgroup"):
            for item in items:
                _join_xdist_group(item)


def _join_xdist_group(item: pytest.Item) -> None:
    """--dist loadgroup sends the tests whose id ends in "@<group>" to one worker. xdist
    3.8 appends that suffix by setting `_nodeid`, which pytest 9.2 no longer reads (it
    keeps a structured `_id`), so the groups are silently ignored (pytest-xdist#1386):
    append it here where xdist could not. Nothing to do once xdist does it itself."""
    names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                    for m in item.iter_markers("xdist_group")})  # fmt: skip
    if not names or "@" in item.nodeid.rpartition("]")[2]:
        return
    grouped = f"{item.nodeid}@{'_'.join(names)}"
    if hasattr(item, "_id"):
        item._id = type(item._id).parse(grouped)
    else:
        item._nodeid = grouped


# ---- the server and the schemas ----------------------------------------------------------


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
