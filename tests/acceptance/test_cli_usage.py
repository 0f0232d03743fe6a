"""Bad usage of the command line, run for real: exit code 2 and one line on stderr saying
what was wrong, never a traceback, and nothing written. A failure while a command runs
exits 1 (README, "Command line": exit codes)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from acceptance_helpers import APPS, Completed, environment, import_app, mirror, run_cli
from conftest import new_schema_name

from taskrunner import TaskRunner

APP = f"{APPS}.cli_app:runner"
ECHO = ("enqueue", APP, "acceptance.echo")


@pytest.fixture
async def tr(
    pg_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TaskRunner]:
    app = import_app("cli_app", monkeypatch)
    async with TaskRunner(pg_dsn, schema=schema) as runner:
        mirror(runner, [app.echo])
        yield runner


@pytest.fixture
def env(pg_dsn: str, schema: str) -> dict[str, str]:
    return environment(pg_dsn, schema)


def refused_as_usage(proc: Completed, *words: str) -> None:
    """Exit 2, one line on stderr starting with the program's name, naming `words`."""
    assert proc.code == 2, (proc.code, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("taskrunner"), lines[0]
    for word in words:
        assert word in lines[0], lines[0]


async def schema_exists(dsn: str, name: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        found: bool = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", name
        )
        return found
    finally:
        await conn.close()


async def test_an_unknown_log_level_exits_2_naming_the_levels(env: dict[str, str]):
    proc = await run_cli("--log-level", "bogus", "stats", "--app", APP, env=env)
    refused_as_usage(proc, "--log-level", "'bogus'", "DEBUG")


async def test_a_log_level_in_lower_case_is_accepted(env: dict[str, str]):
    proc = await run_cli("--log-level", "warning", "stats", "--app", APP, env=env)
    assert proc.code == 0, proc.stderr


async def test_a_worker_for_a_runner_without_tasks_exits_2_before_connecting(pg_dsn: str):
    env = environment("postgresql://nobody@127.0.0.1:1/none")  # never reached
    proc = await run_cli("worker", f"{APPS}.empty_app:runner", env=env, timeout=20)
    refused_as_usage(proc, "empty_app:runner has no tasks", "@runner.task")


async def test_a_worker_with_concurrency_0_exits_2_naming_the_option(env: dict[str, str]):
    proc = await run_cli("worker", APP, "--concurrency", "0", env=env)
    refused_as_usage(proc, "concurrency")


async def test_enqueue_with_a_negative_delay_exits_2_and_writes_nothing(
    tr: TaskRunner, env: dict[str, str]
):
    proc = await run_cli(*ECHO, "--args", "[1]", "--delay", "-5", env=env)
    refused_as_usage(proc, "delay")
    assert await tr.list_jobs() == []


@pytest.mark.parametrize("flag", ["--queue", "--idempotency-key"])
async def test_enqueue_with_an_empty_queue_or_key_exits_2_and_writes_nothing(
    tr: TaskRunner, env: dict[str, str], flag: str
):
    proc = await run_cli(*ECHO, "--args", "[1]", f"{flag}=", env=env)
    refused_as_usage(proc, flag.removeprefix("--").replace("-", "_"), "empty")
    assert await tr.list_jobs() == []


async def test_enqueue_with_a_keyword_given_twice_exits_2_and_writes_nothing(
    tr: TaskRunner, env: dict[str, str]
):
    proc = await run_cli(*ECHO, "--kwargs", '{"value": 1, "value": 2}', env=env)
    refused_as_usage(proc, "--kwargs", "'value' twice")
    assert await tr.list_jobs() == []


async def test_enqueue_of_an_unknown_task_exits_2_naming_the_registered_ones(
    tr: TaskRunner, env: dict[str, str]
):
    proc = await run_cli("enqueue", APP, "unknown.task", env=env)
    refused_as_usage(proc, "unknown task 'unknown.task'", "acceptance.echo")
    assert await tr.list_jobs() == []


@pytest.mark.parametrize("name", ["bad schema", "pg_mine", "information_schema", ""])
async def test_an_invalid_schema_name_exits_2_naming_the_rule(pg_dsn: str, name: str):
    proc = await run_cli("stats", "--schema", name, env=environment(pg_dsn))
    refused_as_usage(proc, "--schema", "invalid schema name")


async def test_jobs_with_an_unknown_status_exits_2_naming_the_statuses(env: dict[str, str]):
    proc = await run_cli("jobs", "--app", APP, "--status", "bogus", env=env)
    refused_as_usage(proc, "'bogus'", "queued", "paused")


@pytest.mark.parametrize("flag", ["--schema", "--dsn"])
async def test_migrate_with_app_refuses_a_schema_or_dsn_beside_it_and_changes_nothing(
    pg_dsn: str, bare_schema: str, flag: str
):
    other = new_schema_name()
    env = environment(pg_dsn, bare_schema)  # the app's schema
    proc = await run_cli(
        "migrate", "--app", APP, flag, other if flag == "--schema" else pg_dsn, env=env
    )
    refused_as_usage(proc, flag, "--app")
    assert not await schema_exists(pg_dsn, bare_schema)
    assert not await schema_exists(pg_dsn, other)


async def test_a_command_that_fails_while_it_runs_exits_1(tr: TaskRunner, env: dict[str, str]):
    job = await tr.enqueue("acceptance.echo", 1)
    proc = await run_cli("job", "retry", str(job.id), "--app", APP, env=env)
    assert proc.code == 1, proc.stderr
    assert "Traceback" not in proc.stderr
