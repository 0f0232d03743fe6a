"""The read commands and the new flags of the command line, run for real: `jobs`, `job
show` and `stats` take the schema from --app, print aligned tables with headers or JSON;
`--version`; `enqueue --run-at/--max-attempts`; any folder of the project works."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from acceptance_helpers import APPS, ROOT, Completed, environment, import_app, mirror, run_cli

from taskrunner import Job, TaskRunner, request_context
from taskrunner.queue import Failure

APP = f"{APPS}.cli_app:runner"
MULTILINE_ERROR = "ValueError: boom\n\nTraceback (most recent call last):\n  File \"x.py\", line 1"


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


async def failed_job(tr: TaskRunner, error: str) -> Job:
    job = await tr.enqueue("acceptance.echo", 1, max_attempts=1)
    (claimed,) = await tr.job_queue.claim(["acceptance.echo"], limit=1, owner="test")
    await tr.job_queue.fail_many([Failure(lease=claimed.lease, error=error)])
    return job


async def test_jobs_takes_the_schema_from_the_app_and_prints_aligned_columns_under_a_header(
    tr: TaskRunner, env: dict[str, str]
):
    ids = [(await tr.enqueue("acceptance.echo", n, queue=q)).id for n, q in ((1, "a"), (2, "bb"))]

    proc = await run_cli("jobs", "--app", APP, env=env)

    assert proc.code == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header.split("  ")[:4] == ["ID", "STATUS", "QUEUE", "TASK"]
    assert [int(row.split()[0]) for row in rows] == ids[::-1]
    for column in ("STATUS", "QUEUE", "TASK", "ATTEMPTS"):
        start = header.index(column)
        assert all(row[start - 2 : start] == "  " and row[start] != " " for row in rows), column


async def test_jobs_filters_by_task_and_request_id_and_prints_json(
    tr: TaskRunner, env: dict[str, str]
):
    await tr.enqueue("acceptance.echo", 1)
    with request_context("req-9"):
        wanted = await tr.enqueue("acceptance.echo", 2)

    proc = await run_cli(
        "jobs", "--app", APP, "--task", "acceptance.echo", "--request-id", "req-9", "--json",
        env=env,
    )  # fmt: skip

    assert proc.code == 0, proc.stderr
    (shown,) = json.loads(proc.stdout)
    assert (shown["id"], shown["args"], shown["request_id"]) == (wanted.id, [2], "req-9")


async def test_jobs_pages_with_before_id_and_says_how_to_get_the_next_page(
    tr: TaskRunner, env: dict[str, str]
):
    ids = [(await tr.enqueue("acceptance.echo", n)).id for n in range(3)]

    first = await run_cli("jobs", "--app", APP, "--limit", "2", env=env)
    hint = re.search(r"--before-id (\d+)", first.stdout)
    assert hint, first.stdout
    second = await run_cli("jobs", "--app", APP, "--before-id", hint.group(1), "--json", env=env)

    assert [j["id"] for j in json.loads(second.stdout)] == [ids[0]]


async def test_job_show_prints_fields_and_the_error_with_its_line_breaks(
    tr: TaskRunner, env: dict[str, str]
):
    job = await failed_job(tr, MULTILINE_ERROR)

    proc = await run_cli("job", "show", str(job.id), "--app", APP, env=env)

    assert proc.code == 0, proc.stderr
    assert f"job {job.id}" in proc.stdout
    assert re.search(r"^  status: +failed$", proc.stdout, re.MULTILINE), proc.stdout
    assert "  last error:\n    ValueError: boom\n\n    Traceback (most recent call last):\n" in (
        proc.stdout
    )
    assert "\\n" not in proc.stdout


async def test_stats_takes_the_schema_from_the_app_and_prints_json(
    tr: TaskRunner, env: dict[str, str]
):
    await tr.enqueue("acceptance.echo", 1, queue="reports")

    proc = await run_cli("stats", "--app", APP, "--json", env=env)

    assert proc.code == 0, proc.stderr
    stats = json.loads(proc.stdout)
    assert stats["queues"]["reports"]["queued"] == 1
    assert stats["queues"]["default"]["queued"] == 0
    assert stats["totals"]["queued"] == 1


async def test_version_prints_the_version(pg_dsn: str):
    import taskrunner

    proc = await run_cli("--version", env=environment(pg_dsn))

    assert (proc.code, proc.stdout.strip()) == (0, f"taskrunner {taskrunner.__version__}")


async def test_enqueue_takes_run_at_in_iso_8601_and_max_attempts(
    tr: TaskRunner, env: dict[str, str]
):
    proc = await run_cli(
        "enqueue", APP, "acceptance.echo", "--args", "[1]",
        "--run-at", "2030-01-31T09:00:00+01:00", "--max-attempts", "2",
        env=env,
    )  # fmt: skip

    assert proc.code == 0, proc.stderr
    (job,) = await tr.list_jobs()
    assert job.run_at == datetime(2030, 1, 31, 8, 0, tzinfo=UTC)
    assert job.max_attempts == 2


async def test_enqueue_refuses_a_run_at_without_a_utc_offset(tr: TaskRunner, env: dict[str, str]):
    proc = await run_cli(
        "enqueue", APP, "acceptance.echo", "--args", "[1]", "--run-at", "2030-01-31T09:00",
        env=env,
    )  # fmt: skip

    assert proc.code == 2
    assert "no UTC offset" in proc.stderr
    assert await tr.list_jobs() == []


async def test_the_cli_finds_an_app_of_the_project_from_a_subfolder(
    tr: TaskRunner, env: dict[str, str]
):
    job = await tr.enqueue("acceptance.echo", 1)
    env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "taskrunner", "jobs", "--app", APP, "--json",
        cwd=Path(ROOT) / "examples", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    proc = Completed(process.returncode or 0, out.decode(), err.decode())

    assert proc.code == 0, proc.stderr
    assert [j["id"] for j in json.loads(proc.stdout)] == [job.id]


async def test_jobs_archived_lists_the_archive_instead_of_the_jobs(
    tr: TaskRunner, env: dict[str, str]
):
    archived = await failed_job(tr, "boom")
    kept = await tr.enqueue("acceptance.echo", 2)
    await tr.cleanup(failed="archive")

    listed = await run_cli("jobs", "--app", APP, "--json", env=env)
    in_archive = await run_cli("jobs", "--app", APP, "--archived", "--json", env=env)

    assert listed.code == 0, listed.stderr
    assert in_archive.code == 0, in_archive.stderr
    assert [job["id"] for job in json.loads(listed.stdout)] == [kept.id]
    assert [(j["id"], j["status"]) for j in json.loads(in_archive.stdout)] == [
        (archived.id, "failed")
    ]
