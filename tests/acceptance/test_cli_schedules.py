"""`taskrunner schedules list|pause|resume|remove|run`, run for real against a schema of
the test's own (given by --dsn and --schema: no app needed)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from acceptance_helpers import environment, run_cli

from taskrunner import TaskRunner


@pytest.fixture
async def tr(pg_dsn: str, schema: str) -> AsyncIterator[TaskRunner]:
    async with TaskRunner(pg_dsn, schema=schema) as runner:

        @runner.task(name="reports.nightly")
        async def nightly(region: str) -> None: ...

        await runner.add_schedule(
            "nightly", nightly, cron="0 3 * * *", timezone="Europe/Berlin", args=["eu"]
        )
        await runner.add_schedule("feeds", nightly, every=timedelta(minutes=5), args=["us"])
        yield runner


@pytest.fixture
def cli(pg_dsn: str, schema: str):
    env = environment(pg_dsn)

    async def run(*args: str):
        return await run_cli(*args, "--dsn", pg_dsn, "--schema", schema, env=env)

    return run


async def test_schedules_list_prints_a_table_with_a_header(tr: TaskRunner, cli):
    proc = await cli("schedules", "list")
    assert proc.code == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "TASK", "WHEN", "TIMEZONE"]
    assert [row.split()[0] for row in rows] == ["feeds", "nightly"]
    assert "every 5m" in rows[0]
    assert "0 3 * * *" in rows[1]
    assert "Europe/Berlin" in rows[1]


async def test_schedules_list_json_gives_every_field(tr: TaskRunner, cli):
    proc = await cli("schedules", "list", "--json")
    assert proc.code == 0, proc.stderr
    feeds, nightly = json.loads(proc.stdout)
    assert (feeds["name"], feeds["every"], feeds["cron"], feeds["args"]) == (
        "feeds",
        300.0,
        None,
        ["us"],
    )
    assert (nightly["cron"], nightly["timezone"], nightly["paused"]) == (
        "0 3 * * *",
        "Europe/Berlin",
        False,
    )
    assert nightly["next_run_at"] is not None


async def test_schedules_pause_resume_and_remove_change_the_schedule(tr: TaskRunner, cli):
    assert (await cli("schedules", "pause", "nightly")).code == 0
    assert [s.paused for s in await tr.list_schedules() if s.name == "nightly"] == [True]
    again = await cli("schedules", "pause", "nightly")
    assert again.code == 1
    assert "already paused" in again.stderr
    assert (await cli("schedules", "resume", "nightly")).code == 0
    assert [s.paused for s in await tr.list_schedules() if s.name == "nightly"] == [False]
    assert (await cli("schedules", "remove", "nightly")).code == 0
    assert [s.name for s in await tr.list_schedules()] == ["feeds"]


async def test_schedules_run_enqueues_one_job_now(tr: TaskRunner, cli):
    proc = await cli("schedules", "run", "feeds")
    assert proc.code == 0, proc.stderr
    (job,) = await tr.list_jobs()
    assert f"enqueued job {job.id}" in proc.stdout
    assert (job.task, job.args) == ("reports.nightly", ["us"])


async def test_schedules_run_of_an_unknown_name_fails_with_a_message(tr: TaskRunner, cli):
    proc = await cli("schedules", "run", "nobody")
    assert proc.code == 1
    assert "no schedule named 'nobody'" in proc.stderr
    assert "Traceback" not in proc.stderr
