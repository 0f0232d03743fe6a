"""`taskrunner queues list|pause|resume|set`, run for real against a schema of the test's
own (given by --dsn and --schema: no app needed)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from acceptance_helpers import environment, run_cli

from taskrunner import RateLimit, TaskRunner


@pytest.fixture
async def tr(pg_dsn: str, schema: str) -> AsyncIterator[TaskRunner]:
    async with TaskRunner(pg_dsn, schema=schema) as runner:

        @runner.task(name="reports.build")
        async def build(n: int) -> None: ...

        await build.enqueue(1, queue="reports")
        yield runner


@pytest.fixture
def cli(pg_dsn: str, schema: str):
    env = environment(pg_dsn)

    async def run(*args: str):
        return await run_cli(*args, "--dsn", pg_dsn, "--schema", schema, env=env)

    return run


async def test_queues_list_prints_a_table_with_a_header(tr: TaskRunner, cli):
    await tr.configure_queue("emails", rate_limit=RateLimit(100, per=timedelta(seconds=1)))

    proc = await cli("queues", "list")

    assert proc.code == 0, proc.stderr
    header, *lines = proc.stdout.splitlines()
    assert header.split() == ["NAME", "STATE", "CONCURRENCY", "RATE", "QUEUED", "RUNNING", "OTHER"]
    assert lines[0].split() == ["emails", "active", "-", "100/1s", "0", "0", "0"]
    assert lines[1].split() == ["reports", "active", "-", "-", "1", "0", "0"]


async def test_queues_list_json_gives_settings_and_counts(tr: TaskRunner, cli):
    await tr.configure_queue("reports", concurrency=2)

    proc = await cli("queues", "list", "--json")

    assert proc.code == 0, proc.stderr
    assert json.loads(proc.stdout) == [
        {
            "name": "reports",
            "paused": False,
            "concurrency": 2,
            "rate_limit": None,
            "counts": {"queued": 1},
        }
    ]


async def test_queues_pause_and_resume_change_the_queue_and_say_when_they_cannot(
    tr: TaskRunner, cli
):
    assert (await cli("queues", "pause", "reports")).code == 0
    assert [q.paused for q in await tr.queues()] == [True]
    again = await cli("queues", "pause", "reports")
    assert again.code == 1
    assert "already paused" in again.stderr
    assert (await cli("queues", "resume", "reports")).code == 0
    assert [q.paused for q in await tr.queues()] == [False]


async def test_queues_set_stores_the_limits(tr: TaskRunner, cli):
    proc = await cli("queues", "set", "reports", "--concurrency", "3", "--rate", "5/60")

    assert proc.code == 0, proc.stderr
    (info,) = await tr.queues()
    assert (info.concurrency, info.rate_limit) == (3, RateLimit(5, per=timedelta(minutes=1)))


@pytest.mark.parametrize("bad", [["--rate", "5"], ["--rate", "0/1"], ["--concurrency", "0"]])
async def test_queues_set_refuses_bad_limits_and_changes_nothing(tr: TaskRunner, cli, bad):
    proc = await cli("queues", "set", "reports", *bad)

    assert proc.code != 0
    assert "Traceback" not in proc.stderr
    assert [(q.concurrency, q.rate_limit) for q in await tr.queues()] == [(None, None)]
