"""The command line, run for real: help, clear errors with their exit codes, enqueue, job
admin, stats, migrate --dry-run and a worker that stops when idle."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from acceptance_helpers import APPS, environment, import_app, mirror, run_cli, run_program

from taskrunner import JobStatus, TaskRunner

APP = f"{APPS}.cli_app:runner"


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


async def test_the_installed_taskrunner_command_prints_help_and_exits_0(pg_dsn: str):
    script = Path(sys.executable).parent / "taskrunner"
    assert script.exists(), "the console script is installed next to the interpreter"
    proc = await run_program([str(script), "--help"], environment(pg_dsn))
    assert proc.code == 0
    for command in ("worker", "migrate", "enqueue", "job", "stats"):
        assert command in proc.stdout


async def test_a_worker_for_a_module_that_does_not_exist_exits_2_naming_the_module(
    env: dict[str, str],
):
    proc = await run_cli("worker", "nope:runner", env=env)
    assert proc.code == 2
    assert "cannot import module 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_a_worker_for_a_missing_attribute_exits_2_naming_the_attribute(
    env: dict[str, str],
):
    proc = await run_cli("worker", f"{APPS}.cli_app:missing", env=env)
    assert proc.code == 2
    assert "has no attribute 'missing'" in proc.stderr
    assert "Traceback" not in proc.stderr


async def test_a_worker_for_something_that_is_not_a_runner_exits_2(env: dict[str, str]):
    proc = await run_cli("worker", f"{APPS}.cli_app:not_a_runner", env=env)
    assert proc.code == 2
    assert "not a TaskRunner" in proc.stderr


async def test_enqueue_prints_the_new_jobs_id(tr: TaskRunner, env: dict[str, str]):
    proc = await run_cli("enqueue", APP, "acceptance.echo", "--args", "[1]", env=env)
    assert proc.code == 0, proc.stderr

    match = re.search(r"enqueued (\d+)", proc.stdout)
    assert match, proc.stdout
    job = await tr.get_job(int(match.group(1)))
    assert job is not None
    assert (job.task, job.args, job.status) == ("acceptance.echo", [1], JobStatus.QUEUED)


async def test_enqueue_with_arguments_that_do_not_fit_exits_2_and_writes_nothing(
    tr: TaskRunner, env: dict[str, str]
):
    proc = await run_cli("enqueue", APP, "acceptance.echo", "--args", '["x"]', env=env)
    assert proc.code == 2
    assert "invalid arguments" in proc.stderr
    assert (await tr.stats()).totals["queued"] == 0


async def test_job_show_json_prints_the_job_as_json(
    tr: TaskRunner, env: dict[str, str], schema: str
):
    job = await tr.enqueue("acceptance.echo", 5)
    proc = await run_cli("job", "show", str(job.id), "--schema", schema, "--json", env=env)
    assert proc.code == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert (shown["id"], shown["task"], shown["status"], shown["args"]) == (
        job.id,
        "acceptance.echo",
        "queued",
        [5],
    )


async def test_job_show_of_an_unknown_id_exits_1(tr: TaskRunner, env: dict[str, str], schema: str):
    proc = await run_cli("job", "show", "424242", "--schema", schema, env=env)
    assert proc.code == 1
    assert "no job with id 424242" in proc.stderr


async def test_job_cancel_cancels_a_queued_job(tr: TaskRunner, env: dict[str, str], schema: str):
    job = await tr.enqueue("acceptance.echo", 5)
    proc = await run_cli("job", "cancel", str(job.id), "--schema", schema, env=env)
    assert proc.code == 0, proc.stderr
    assert (await tr.get_job(job.id)).status is JobStatus.CANCELLED  # type: ignore[union-attr]


async def test_job_retry_requeues_a_cancelled_job(tr: TaskRunner, env: dict[str, str], schema: str):
    job = await tr.enqueue("acceptance.echo", 5)
    assert await tr.cancel(job.id)
    proc = await run_cli("job", "retry", str(job.id), "--schema", schema, env=env)
    assert proc.code == 0, proc.stderr
    requeued = await tr.get_job(job.id)
    assert requeued is not None
    assert (requeued.status, requeued.attempts) == (JobStatus.QUEUED, 0)


async def test_job_retry_of_a_queued_job_exits_1_and_says_why(
    tr: TaskRunner, env: dict[str, str], schema: str
):
    job = await tr.enqueue("acceptance.echo", 5)
    proc = await run_cli("job", "retry", str(job.id), "--schema", schema, env=env)
    assert proc.code == 1
    assert "cannot retry" in proc.stderr


async def test_stats_prints_counts_per_queue(tr: TaskRunner, env: dict[str, str], schema: str):
    await tr.enqueue("acceptance.echo", 1)
    await tr.enqueue("acceptance.echo", 2, queue="reports")
    proc = await run_cli("stats", "--schema", schema, env=env)
    assert proc.code == 0, proc.stderr
    lines = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines() if line}
    assert lines["QUEUE"][0] == "QUEUED"
    assert lines["default"][0] == "1"
    assert lines["reports"][0] == "1"


async def test_migrate_dry_run_names_pending_migrations_and_changes_nothing(
    pg_dsn: str, bare_schema: str
):
    proc = await run_cli("migrate", "--dry-run", "--schema", bare_schema, env=environment(pg_dsn))
    assert proc.code == 0, proc.stderr
    assert "would apply" in proc.stdout
    assert "0001_initial" in proc.stdout
    conn = await asyncpg.connect(pg_dsn)
    try:
        exists = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", bare_schema
        )
    finally:
        await conn.close()
    assert not exists


async def test_migrate_dry_run_on_an_up_to_date_schema_says_so(pg_dsn: str, schema: str):
    proc = await run_cli("migrate", "--dry-run", "--schema", schema, env=environment(pg_dsn))
    assert proc.code == 0, proc.stderr
    assert "up to date" in proc.stdout


async def test_the_worker_command_runs_queued_jobs_and_exits_0_when_idle(
    tr: TaskRunner, env: dict[str, str]
):
    jobs = [await tr.enqueue("acceptance.echo", n) for n in (1, 2, 3)]
    proc = await run_cli(
        "worker",
        APP,
        "--stop-when-idle",
        "--concurrency",
        "2",
        "--poll-interval",
        "0.1",
        env=env,
    )
    assert proc.code == 0, proc.stderr
    assert [await tr.result(j.id, timeout=10) for j in jobs] == [1, 2, 3]
