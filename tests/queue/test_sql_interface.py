"""The queue in SQL (migration 0009): enqueue, the trigger functions, claim, complete and
fail, called as any language or a trigger would, through plain SQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from conftest import drop_schema, new_schema_name

from taskrunner.db import Migrator
from taskrunner.queue import JobQueue, NewJob
from taskrunner.queue.queues import QueueControls


@pytest.fixture
async def db(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_dsn)
    yield conn
    await conn.close()


async def sql_enqueue(db: asyncpg.Connection, schema: str, task: str, **named: object) -> int:
    """`SELECT <schema>.enqueue(task, name => $n, ...)` with every value a parameter."""
    names = list(named)
    call = ", ".join(f"{name} => ${i + 2}" for i, name in enumerate(names))
    sql = f'SELECT "{schema}".enqueue($1{", " if call else ""}{call})'
    job_id: int = await db.fetchval(sql, task, *named.values())
    return job_id


async def claim(db: asyncpg.Connection, schema: str, worker: str, tasks: list[str], n: int = 10):
    return await db.fetch(
        f"SELECT * FROM \"{schema}\".claim($1, $2, interval '30 seconds', $3)", worker, tasks, n
    )


async def job(db: asyncpg.Connection, schema: str, job_id: int) -> asyncpg.Record:
    return await db.fetchrow(f'SELECT * FROM "{schema}".jobs WHERE id = $1', job_id)


async def test_a_job_enqueued_in_sql_has_the_given_fields_and_python_defaults(
    db: asyncpg.Connection, schema: str
):
    job_id = await db.fetchval(
        f"SELECT \"{schema}\".enqueue('emails.send', args => '[\"a@b.c\"]', kwargs => '{{}}', "
        "queue => 'default', priority => 0, run_at => now(), max_attempts => NULL, "
        "idempotency_key => NULL, request_id => NULL)"
    )

    row = await job(db, schema, job_id)
    assert (row["task"], row["args"], row["kwargs"], row["status"]) == (
        "emails.send", '["a@b.c"]', "{}", "queued",
    )  # fmt: skip
    assert (row["queue"], row["priority"], row["max_attempts"], row["attempts"]) == (
        "default", 0, 5, 0,
    )  # fmt: skip
    assert len(row["request_id"]) == 32


async def test_a_sql_enqueue_wakes_idle_workers_when_its_transaction_commits(
    db: asyncpg.Connection, pg_dsn: str, schema: str
):
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(pg_dsn)
    try:
        await listener.add_listener(f"{schema}.jobs", lambda *a: heard.put_nowait(a[3]))
        async with db.transaction():
            await sql_enqueue(db, schema, "t", queue="reports")
            await asyncio.sleep(0)  # nothing is delivered before the commit
            assert heard.empty()
        assert await asyncio.wait_for(heard.get(), 5) == "reports"
    finally:
        await listener.close()


async def test_the_same_key_and_arguments_return_the_existing_job(
    db: asyncpg.Connection, schema: str
):
    first = await sql_enqueue(db, schema, "t", args="[1]", idempotency_key="k")
    again = await sql_enqueue(db, schema, "t", args="[1]", idempotency_key="k")

    assert again == first
    assert await db.fetchval(f'SELECT count(*) FROM "{schema}".jobs') == 1


async def test_the_same_key_with_other_arguments_raises_an_error_naming_the_conflict(
    db: asyncpg.Connection, schema: str
):
    first = await sql_enqueue(db, schema, "t", args="[1]", idempotency_key="k")

    with pytest.raises(asyncpg.UniqueViolationError) as raised:
        await sql_enqueue(db, schema, "t", args="[2]", idempotency_key="k")

    assert f"idempotency conflict: key 'k' of task 't' is held by job {first}" in str(raised.value)
    assert await db.fetchval(f'SELECT count(*) FROM "{schema}".jobs') == 1


async def test_a_sql_enqueue_returns_a_job_python_wrote_with_the_same_key_and_arguments(
    db: asyncpg.Connection, queue: JobQueue, schema: str
):
    written = await queue.enqueue(
        NewJob(task="t", args=b'["a"]', idempotency_key="k", fingerprint="python-digest")
    )

    assert await sql_enqueue(db, schema, "t", args='["a"]', idempotency_key="k") == written.job.id


async def test_a_python_enqueue_returns_a_job_sql_wrote_with_the_same_key_and_arguments(
    db: asyncpg.Connection, queue: JobQueue, schema: str
):
    job_id = await sql_enqueue(db, schema, "t", args='["a"]', idempotency_key="k")

    again = await queue.enqueue(
        NewJob(task="t", args=b'["a"]', idempotency_key="k", fingerprint="python-digest")
    )

    assert (again.job.id, again.deduplicated) == (job_id, True)


async def test_a_key_past_its_lifetime_is_free_for_a_new_sql_job(
    db: asyncpg.Connection, schema: str
):
    old = await sql_enqueue(db, schema, "t", args="[1]", idempotency_key="k")
    await db.execute(
        f"UPDATE \"{schema}\".jobs SET status = 'succeeded', finished_at = now() - "
        "interval '25 hours' WHERE id = $1",
        old,
    )

    new = await sql_enqueue(db, schema, "t", args="[2]", idempotency_key="k")

    assert new != old
    assert (await job(db, schema, old))["idempotency_key"] is None


async def test_a_whole_job_life_from_sql_alone(db: asyncpg.Connection, schema: str):
    job_id = await sql_enqueue(db, schema, "emails.send", args='["a@b.c"]')

    (claimed,) = await claim(db, schema, "worker-7", ["emails.send"])
    assert (claimed["id"], claimed["task"], claimed["args"], claimed["attempts"]) == (
        job_id, "emails.send", '["a@b.c"]', 1,
    )  # fmt: skip
    assert (await job(db, schema, job_id))["lease_owner"] == "worker-7"
    applied = await db.fetchval(
        f'SELECT "{schema}".complete($1, $2, result => \'{{"ok": true}}\')',
        claimed["id"],
        claimed["lease_id"],
    )

    assert applied is True
    row = await job(db, schema, job_id)
    assert (row["status"], row["result"], row["lease_id"]) == ("succeeded", '{"ok": true}', None)


async def test_fail_with_retry_at_queues_the_job_again_and_without_fails_it(
    db: asyncpg.Connection, schema: str
):
    job_id = await sql_enqueue(db, schema, "t")
    (first,) = await claim(db, schema, "w", ["t"])
    assert await db.fetchval(
        f"SELECT \"{schema}\".fail($1, $2, error => 'boom', retry_at => now() + "
        "interval '1 minute')",
        first["id"],
        first["lease_id"],
    )
    row = await job(db, schema, job_id)
    assert (row["status"], row["last_error"], row["attempts"]) == ("queued", "boom", 1)

    await db.execute(f'UPDATE "{schema}".jobs SET run_at = now() WHERE id = $1', job_id)
    (second,) = await claim(db, schema, "w", ["t"])
    assert await db.fetchval(
        f"SELECT \"{schema}\".fail($1, $2, error => 'bust')", second["id"], second["lease_id"]
    )
    row = await job(db, schema, job_id)
    assert (row["status"], row["last_error"], row["attempts"]) == ("failed", "bust", 2)


async def test_a_stale_leases_complete_and_fail_change_nothing(
    db: asyncpg.Connection, queue: JobQueue, schema: str
):
    job_id = await sql_enqueue(db, schema, "t")
    (stale,) = await claim(db, schema, "slow", ["t"])
    await db.execute(
        f"UPDATE \"{schema}\".jobs SET lease_expires_at = now() - interval '1 second' "
        "WHERE id = $1",
        job_id,
    )
    await queue.rescue_expired()
    (current,) = await claim(db, schema, "fast", ["t"])
    before = await job(db, schema, job_id)

    complete = f'SELECT "{schema}".complete($1, $2, result => \'"late"\')'
    fail = f"SELECT \"{schema}\".fail($1, $2, error => 'late')"
    assert await db.fetchval(complete, job_id, stale["lease_id"]) is False
    assert await db.fetchval(fail, job_id, stale["lease_id"]) is False

    assert await job(db, schema, job_id) == before
    assert before["lease_id"] == current["lease_id"]


async def test_claim_passes_paused_queues_and_keeps_to_limits(
    db: asyncpg.Connection, pool: asyncpg.Pool, schema: str
):
    controls = QueueControls(pool, schema)
    await controls.pause("held")
    await controls.configure("serial", concurrency=1, rate_limit=None, rate_per=None)
    await sql_enqueue(db, schema, "t", queue="held")
    serial = [await sql_enqueue(db, schema, "t", queue="serial") for _ in range(3)]
    free = await sql_enqueue(db, schema, "t", queue="free")

    claimed = {r["id"] for r in await claim(db, schema, "w", ["t"], 10)}

    assert claimed == {serial[0], free}


@pytest.mark.parametrize(
    "hostile",
    ["'; DROP TABLE jobs; --", 'quote"s', "semi;colon", "$$; SELECT 1; $$", "back\\slash"],
)
async def test_hostile_names_keys_and_arguments_are_stored_as_data(
    db: asyncpg.Connection, schema: str, hostile: str
):
    import json

    args = json.dumps([hostile, {hostile: hostile}])
    job_id = await sql_enqueue(
        db, schema, hostile, args=args, queue=hostile, idempotency_key=hostile,
        request_id=hostile,
    )  # fmt: skip

    row = await job(db, schema, job_id)
    assert (row["task"], row["queue"], row["idempotency_key"], row["request_id"]) == (
        hostile, hostile, hostile, hostile,
    )  # fmt: skip
    assert json.loads(row["args"]) == [hostile, {hostile: hostile}]
    assert await db.fetchval(f'SELECT count(*) FROM "{schema}".jobs') == 1


@pytest.mark.parametrize(
    "named",
    [
        {"args": '["\\u0000"]'},
        {"kwargs": '{"a": "x\\u0000y"}'},
        {"args": '{"not": "an array"}'},
        {"kwargs": "[1]"},
        {"queue": ""},
        {"idempotency_key": ""},
    ],
)
async def test_input_postgresql_cannot_store_or_the_queue_cannot_run_is_refused(
    db: asyncpg.Connection, schema: str, named: dict[str, str]
):
    with pytest.raises(asyncpg.PostgresError):
        await sql_enqueue(db, schema, "t", **named)
    assert await db.fetchval(f'SELECT count(*) FROM "{schema}".jobs') == 0


@pytest.mark.parametrize("task", ["", "x" * 201, "nul\x00inside"])
async def test_a_bad_task_name_is_refused(db: asyncpg.Connection, schema: str, task: str):
    with pytest.raises((asyncpg.PostgresError, asyncpg.DataError, ValueError)):
        await sql_enqueue(db, schema, task)
    assert await db.fetchval(f'SELECT count(*) FROM "{schema}".jobs') == 0


@pytest.fixture
async def users(db: asyncpg.Connection, schema: str) -> str:
    await db.execute(f'CREATE TABLE "{schema}".users (id serial PRIMARY KEY, email text)')
    return f'"{schema}".users'


async def test_enqueue_row_id_enqueues_a_job_with_the_rows_id(
    db: asyncpg.Connection, schema: str, users: str
):
    await db.execute(
        f"CREATE TRIGGER welcome AFTER INSERT ON {users} FOR EACH ROW "
        f"EXECUTE FUNCTION \"{schema}\".enqueue_row_id('emails.welcome', 'id')"
    )
    await db.execute(f"INSERT INTO {users} (email) VALUES ('a@b.c'), ('d@e.f')")

    rows = await db.fetch(f'SELECT task, args, kwargs FROM "{schema}".jobs ORDER BY id')
    assert [tuple(r) for r in rows] == [
        ("emails.welcome", "[]", '{"id": 1}'),
        ("emails.welcome", "[]", '{"id": 2}'),
    ]


async def test_enqueue_row_passes_the_whole_row(db: asyncpg.Connection, schema: str, users: str):
    await db.execute(
        f"CREATE TRIGGER sync AFTER INSERT ON {users} FOR EACH ROW "
        f"EXECUTE FUNCTION \"{schema}\".enqueue_row('users.sync')"
    )
    await db.execute(f"INSERT INTO {users} (email) VALUES ('a@b.c')")

    assert await db.fetchval(f'SELECT kwargs FROM "{schema}".jobs') == (
        '{"row": {"id": 1, "email": "a@b.c"}}'
    )


async def test_enqueue_fields_passes_the_named_columns(
    db: asyncpg.Connection, schema: str, users: str
):
    await db.execute(
        f"CREATE TRIGGER idx AFTER INSERT ON {users} FOR EACH ROW "
        f"EXECUTE FUNCTION \"{schema}\".enqueue_fields('users.index', 'id', 'email')"
    )
    await db.execute(f"INSERT INTO {users} (email) VALUES ('a@b.c')")

    assert await db.fetchval(f'SELECT kwargs FROM "{schema}".jobs') == (
        '{"id": 1, "email": "a@b.c"}'
    )


async def test_a_trigger_naming_a_missing_column_fails_the_insert_and_enqueues_nothing(
    db: asyncpg.Connection, schema: str, users: str
):
    await db.execute(
        f"CREATE TRIGGER bad AFTER INSERT ON {users} FOR EACH ROW "
        f"EXECUTE FUNCTION \"{schema}\".enqueue_row_id('t', 'nope; DROP TABLE x')"
    )

    with pytest.raises(asyncpg.RaiseError, match="has no column"):
        await db.execute(f"INSERT INTO {users} (email) VALUES ('a@b.c')")
    assert await db.fetchval(f'SELECT count(*) FROM "{schema}".jobs') == 0


async def test_a_rolled_back_insert_enqueues_nothing(
    db: asyncpg.Connection, schema: str, users: str
):
    await db.execute(
        f"CREATE TRIGGER welcome AFTER INSERT ON {users} FOR EACH ROW "
        f"EXECUTE FUNCTION \"{schema}\".enqueue_row_id('emails.welcome', 'id')"
    )

    async def failing_request() -> None:
        async with db.transaction():
            await db.execute(f"INSERT INTO {users} (email) VALUES ('a@b.c')")
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError):
        await failing_request()

    assert await db.fetchval(f'SELECT count(*) FROM "{schema}".jobs') == 0


async def test_the_functions_work_in_a_schema_whose_name_needs_quoting(
    db: asyncpg.Connection, pg_dsn: str
):
    schema = new_schema_name().replace("t_", "t_Mixed", 1)
    try:
        await Migrator(schema).migrate(db)
        heard: asyncio.Queue[str] = asyncio.Queue()
        await db.add_listener(f"{schema}.jobs", lambda *a: heard.put_nowait(a[3]))
        await sql_enqueue(db, schema, "t", queue="q")
        assert await asyncio.wait_for(heard.get(), 5) == "q"
        assert len(await claim(db, schema, "w", ["t"])) == 1
    finally:
        await drop_schema(pg_dsn, schema)
