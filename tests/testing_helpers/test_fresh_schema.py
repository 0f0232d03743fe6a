"""fresh_schema: the application's own runner, on a new schema for one test."""

from __future__ import annotations

import asyncpg
import pytest

from taskrunner import TaskRunner, TaskRunnerError
from taskrunner.testing import fresh_schema

APP_SCHEMA = "app_schema_never_created"


def app(dsn: str | None = None) -> TaskRunner:
    """A runner as an application declares it at module level: its own schema, tasks."""
    runner = TaskRunner(dsn, schema=APP_SCHEMA)

    @runner.task(name="app.greet")
    async def greet(name: str) -> str:
        return f"hello {name}"

    return runner


async def schema_exists(dsn: str, schema: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        found: bool = await conn.fetchval(
            "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema
        )
    finally:
        await conn.close()
    return found


async def test_the_runner_is_opened_on_a_new_migrated_schema_which_is_dropped_after(
    pg_dsn: str,
) -> None:
    runner = app()
    async with fresh_schema(runner, dsn=pg_dsn) as opened:
        assert opened is runner
        schema = runner.schema
        assert schema.startswith("taskrunner_test_")
        assert await schema_exists(pg_dsn, schema)
        await runner.enqueue("app.greet", "ada")
        assert (await runner.stats())["default"]["queued"] == 1
    assert not await schema_exists(pg_dsn, schema)
    assert not await schema_exists(pg_dsn, APP_SCHEMA)


async def test_the_runner_gets_its_own_dsn_and_schema_back(pg_dsn: str) -> None:
    runner = app()
    async with fresh_schema(runner, dsn=pg_dsn):
        assert runner.dsn == pg_dsn
    assert (runner.dsn, runner.schema, runner.is_open) == (None, APP_SCHEMA, False)


async def test_jobs_enqueued_through_the_task_objects_land_in_the_fresh_schema(
    pg_dsn: str,
) -> None:
    runner = app()
    greet = runner.tasks["app.greet"]
    async with fresh_schema(runner, dsn=pg_dsn):
        job = await greet.enqueue("ada")
        assert (await runner.get_job(job.id)) is not None


async def test_each_fresh_schema_starts_empty(pg_dsn: str) -> None:
    runner = app()
    async with fresh_schema(runner, dsn=pg_dsn):
        await runner.enqueue("app.greet", "ada")
        first = runner.schema
    async with fresh_schema(runner, dsn=pg_dsn):
        assert runner.schema != first
        assert await runner.list_jobs() == []


async def test_the_schema_is_dropped_when_the_test_fails_and_the_failure_goes_through(
    pg_dsn: str,
) -> None:
    runner = app()
    schemas: list[str] = []

    async def failing_test() -> None:
        async with fresh_schema(runner, dsn=pg_dsn):
            schemas.append(runner.schema)
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await failing_test()
    (schema,) = schemas
    assert not await schema_exists(pg_dsn, schema)
    assert runner.schema == APP_SCHEMA


async def test_without_a_dsn_the_runner_resolves_its_own(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKRUNNER_DSN", pg_dsn)
    runner = app()
    async with fresh_schema(runner):
        assert runner.target.dsn == pg_dsn
        schema = runner.schema
    assert not await schema_exists(pg_dsn, schema)


async def test_an_open_runner_is_refused(pg_dsn: str, bare_schema: str) -> None:
    async with TaskRunner(pg_dsn, schema=bare_schema) as runner:
        with pytest.raises(TaskRunnerError, match="needs a runner that is not open"):
            async with fresh_schema(runner, dsn=pg_dsn):
                pass
        assert runner.schema == bare_schema
