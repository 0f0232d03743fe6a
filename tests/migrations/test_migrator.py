"""Migrations: each applied exactly once per schema, everything inside that schema."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from conftest import drop_schema, new_schema_name

from taskrunner.db import Migrator, ResolvedDsn, connect
from taskrunner.db.migrator import load_migrations
from taskrunner.errors import InvalidSchemaName
from taskrunner.queue import Completion, JobQueue, NewJob

ALL_MIGRATIONS = [m.name for m in load_migrations()]


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_dsn)
    yield conn
    await conn.close()


async def schema_exists(conn: asyncpg.Connection, schema: str) -> bool:
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema
    )


async def recorded_versions(conn: asyncpg.Connection, schema: str) -> list[str]:
    rows = await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations ORDER BY version')
    return [r["version"] for r in rows]


async def objects_in(conn: asyncpg.Connection, namespace: str) -> set[tuple[str, str]]:
    """Every relation, type and function of a namespace, as (catalog, name)."""
    rows = await conn.fetch(
        """
        SELECT 'pg_class', relname::text FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
        UNION ALL
        SELECT 'pg_type', typname::text FROM pg_type t
            JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1
        UNION ALL
        SELECT 'pg_proc', proname::text FROM pg_proc p
            JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
        """,
        namespace,
    )
    return {(r[0], r[1]) for r in rows}


def test_the_migrations_are_numbered_and_start_with_the_initial_one():
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    assert ALL_MIGRATIONS[0] == "0001_initial"


async def test_migrating_from_zero_applies_every_migration_in_order_and_records_it(
    conn: asyncpg.Connection, bare_schema: str
):
    applied = await Migrator(bare_schema).migrate(conn)

    assert applied == ALL_MIGRATIONS
    assert await recorded_versions(conn, bare_schema) == [m.version for m in load_migrations()]


async def test_migrating_twice_applies_nothing_the_second_time(
    conn: asyncpg.Connection, bare_schema: str
):
    await Migrator(bare_schema).migrate(conn)
    assert await Migrator(bare_schema).migrate(conn) == []
    assert await Migrator(bare_schema).pending(conn) == []


async def test_migrating_an_up_to_date_schema_takes_no_lock(
    conn: asyncpg.Connection, pg_dsn: str, schema: str
):
    # A worker starting migrates first: with nothing pending that is two reads, not a
    # locked transaction per migration, and it does not wait for a migration elsewhere.
    await Migrator(schema).migrate(conn)
    other = await asyncpg.connect(pg_dsn)
    try:
        async with other.transaction():
            await other.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"taskrunner.migrate:{schema}",
            )
            assert await asyncio.wait_for(Migrator(schema).migrate(conn), 5) == []
    finally:
        await other.close()


async def test_a_dry_run_names_the_pending_migrations_and_creates_nothing(
    conn: asyncpg.Connection, bare_schema: str
):
    assert await Migrator(bare_schema).migrate(conn, dry_run=True) == ALL_MIGRATIONS
    assert await Migrator(bare_schema).pending(conn) == ALL_MIGRATIONS
    assert not await schema_exists(conn, bare_schema)


async def test_a_dry_run_after_migrating_names_nothing(conn: asyncpg.Connection, schema: str):
    assert await Migrator(schema).migrate(conn, dry_run=True) == []


async def test_a_migration_recorded_as_applied_is_not_applied_again(
    conn: asyncpg.Connection, bare_schema: str
):
    await conn.execute(
        f'CREATE SCHEMA "{bare_schema}"; '
        f'CREATE TABLE "{bare_schema}".schema_migrations '
        "(version text PRIMARY KEY, name text NOT NULL, applied_at timestamptz DEFAULT now()); "
    )
    await conn.executemany(
        f'INSERT INTO "{bare_schema}".schema_migrations VALUES ($1, $2)',
        [(m.version, m.name) for m in load_migrations()],
    )

    assert await Migrator(bare_schema).migrate(conn) == []
    assert await conn.fetchval("SELECT to_regclass($1)", f'"{bare_schema}".jobs') is None


async def test_four_concurrent_migrators_apply_each_migration_exactly_once(
    target: ResolvedDsn, bare_schema: str, conn: asyncpg.Connection
):
    connections = [await connect(target) for _ in range(4)]
    try:
        results = await asyncio.gather(*(Migrator(bare_schema).migrate(c) for c in connections))
    finally:
        await asyncio.gather(*(c.close() for c in connections))

    assert sorted(name for applied in results for name in applied) == ALL_MIGRATIONS
    assert await recorded_versions(conn, bare_schema) == [m.version for m in load_migrations()]


async def test_two_schemas_are_isolated_from_each_other(
    pool: asyncpg.Pool, pg_dsn: str, schema: str
):
    other_schema = new_schema_name()
    try:
        async with pool.acquire() as c:
            await Migrator(other_schema).migrate(c)
        here, there = JobQueue(pool, schema), JobQueue(pool, other_schema)

        job = (await here.enqueue(NewJob(task="t", idempotency_key="k"))).job

        assert await there.get(job.id) is None
        assert await there.count_queued() == 0
        assert await there.claim(["t"], limit=10, owner="w") == []
        same_key = await there.enqueue(NewJob(task="t", args=b"[2]", idempotency_key="k"))
        assert not same_key.deduplicated
        assert [j.id for j in await here.claim(["t"], limit=10, owner="w")] == [job.id]
    finally:
        await drop_schema(pg_dsn, other_schema)


HOSTILE_NAMES = [
    'x"; drop table jobs; --',
    "1abc",
    "",
    "a" * 64,
    "a-b",
    "a b",
    "a.b",
    "public.jobs",
    'a"b',
    "straße",
    "abc\n",
    "a" * 57,  # "<schema>.cancel" would not fit PostgreSQL's 63-byte channel names
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_migrator_refuses_a_schema_name_that_is_not_a_plain_identifier(name: str):
    with pytest.raises(InvalidSchemaName) as raised:
        Migrator(name)
    assert isinstance(raised.value, ValueError)
    assert raised.value.schema == name


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_a_queue_refuses_a_schema_name_that_is_not_a_plain_identifier(
    pool: asyncpg.Pool, name: str
):
    with pytest.raises(InvalidSchemaName):
        JobQueue(pool, name)


async def test_a_hostile_schema_name_runs_no_sql(conn: asyncpg.Connection, schema: str):
    tables_before = await objects_in(conn, schema)
    with pytest.raises(InvalidSchemaName):
        await Migrator(f'{schema}"; drop table "{schema}".jobs; --').migrate(conn)
    assert await objects_in(conn, schema) == tables_before


@pytest.mark.parametrize("longest", [False, True], ids=["mixed-case", "56-characters"])
async def test_any_plain_identifier_up_to_56_characters_works_end_to_end(
    target: ResolvedDsn, pg_dsn: str, longest: bool
):
    name = new_schema_name() + "_MiXeD"
    if longest:
        name = name.ljust(56, "x")
    conn = await connect(target)
    try:
        await Migrator(name).migrate(conn)
        queue = JobQueue(conn, name)
        job = (await queue.enqueue(NewJob(task="t"))).job  # notifies "<schema>.jobs"
        (claimed,) = await queue.claim(["t"], limit=1, owner="w")
        assert await queue.cancel(job.id)  # notifies "<schema>.cancel"
        assert (await queue.complete_many([Completion(lease=claimed.lease)])).applied == {
            job.id: "succeeded"  # the handler returned: a cancel too late changes nothing
        }
        assert await schema_exists(conn, name)  # exactly that name, case and all
    finally:
        await conn.close()
        await drop_schema(pg_dsn, name)


async def test_every_object_lives_in_the_configured_schema_and_nothing_in_public(
    conn: asyncpg.Connection, bare_schema: str
):
    public_before = await objects_in(conn, "public")

    await Migrator(bare_schema).migrate(conn)

    assert await objects_in(conn, "public") == public_before
    mine = await objects_in(conn, bare_schema)
    assert {
        ("pg_class", "jobs"),
        ("pg_class", "jobs_pkey"),
        ("pg_class", "jobs_id_seq"),
        ("pg_class", "lease_ids"),
        ("pg_class", "jobs_claim_order"),
        ("pg_class", "jobs_idempotency"),
        ("pg_class", "jobs_lease_expiry"),
        ("pg_class", "schema_migrations"),
        ("pg_type", "job_status"),
    } <= mine
