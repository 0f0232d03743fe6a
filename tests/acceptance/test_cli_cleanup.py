"""`taskrunner cleanup`, run for real against a schema of the test's own (given by --dsn
and --schema: no app needed)."""

from __future__ import annotations

import argparse

import pytest
from acceptance_helpers import environment, run_cli

from taskrunner import TaskRunner
from taskrunner.cli.cleanup import duration


@pytest.fixture
async def tr(pg_dsn: str, schema: str):
    async with TaskRunner(pg_dsn, schema=schema) as runner:
        yield runner


@pytest.fixture
def cli(pg_dsn: str, schema: str):
    env = environment(pg_dsn)

    async def run(*args: str):
        return await run_cli("cleanup", *args, "--dsn", pg_dsn, "--schema", schema, env=env)

    return run


async def finished(runner: TaskRunner, status: str, count: int, *, days_ago: float) -> None:
    await runner.job_queue.db.execute(
        f'INSERT INTO "{runner.schema}".jobs (task, status, finished_at) '
        f"SELECT 't', $1::text::\"{runner.schema}\".job_status, "
        "now() - make_interval(days => 0, secs => $3::float8 * 86400) "
        "FROM generate_series(1, $2)",
        status,
        count,
        days_ago,
    )


async def counts(runner: TaskRunner) -> dict[str, int]:
    rows = await runner.job_queue.db.fetch(
        f'SELECT status::text, count(*) FROM "{runner.schema}".jobs GROUP BY status'
    )
    archived = await runner.job_queue.db.fetchval(
        f'SELECT count(*) FROM "{runner.schema}".archived_jobs'
    )
    return {**{r[0]: r[1] for r in rows}, "archived": archived}


async def test_a_dry_run_prints_the_counts_per_status_and_changes_nothing(tr: TaskRunner, cli):
    await finished(tr, "succeeded", 3, days_ago=8)
    await finished(tr, "succeeded", 2, days_ago=1)
    await finished(tr, "failed", 4, days_ago=8)
    before = await counts(tr)

    proc = await cli(
        "--succeeded", "remove", "--failed", "archive", "--older-than", "7d", "--dry-run"
    )

    assert proc.code == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "succeeded: would remove 3 jobs",
        "failed: would archive 4 jobs",
        "dry run: nothing was changed",
    ]
    assert await counts(tr) == before


async def test_a_real_run_acts_and_prints_what_it_did(tr: TaskRunner, cli):
    await finished(tr, "succeeded", 3, days_ago=8)
    await finished(tr, "succeeded", 2, days_ago=1)
    await finished(tr, "failed", 4, days_ago=8)

    proc = await cli("--succeeded", "remove", "--failed", "archive", "--older-than", "7d")

    assert proc.code == 0, proc.stderr
    assert proc.stdout.splitlines() == ["succeeded: removed 3 jobs", "failed: archived 4 jobs"]
    assert await counts(tr) == {"succeeded": 2, "archived": 4}


async def test_a_cleanup_of_many_rows_prints_its_progress(tr: TaskRunner, cli):
    await finished(tr, "cancelled", 60, days_ago=1)

    proc = await cli("--cancelled", "remove", "--batch-size", "5", "--progress-every", "4")

    assert proc.code == 0, proc.stderr
    progress = [line.split(" (")[0] for line in proc.stderr.splitlines() if "batches" in line]
    assert progress == [
        "cancelled: 4 batches done, 20 rows so far",
        "cancelled: 8 batches done, 40 rows so far",
        "cancelled: 12 batches done, 60 rows so far",
    ]
    assert proc.stdout.splitlines() == ["cancelled: removed 60 jobs"]


@pytest.mark.parametrize(
    "args",
    [
        ("--running", "archive"),
        ("--archived", "rerun"),
        ("--succeeded", "delete"),
        ("--succeeded", "remove", "--older-than", "7 days"),
        ("--succeeded", "remove", "--batch-size", "0"),
        (),  # nothing to do
    ],
)
async def test_a_bad_or_empty_command_is_a_usage_error_that_changes_nothing(
    tr: TaskRunner, cli, args: tuple[str, ...]
):
    await finished(tr, "succeeded", 2, days_ago=8)

    proc = await cli(*args)

    assert proc.code == 2
    assert "error" in proc.stderr
    assert await counts(tr) == {"succeeded": 2, "archived": 0}


@pytest.mark.slow
async def test_a_database_that_cannot_be_reached_is_exit_code_1(pg_dsn: str, schema: str):
    env = environment(pg_dsn)
    proc = await run_cli(
        "cleanup",
        "--succeeded",
        "remove",
        "--dsn",
        "postgresql://postgres@127.0.0.1:1/none",
        "--schema",
        schema,
        env=env,
        timeout=60,
    )

    assert proc.code == 1
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("30s", 30), ("15m", 900), ("12h", 43200), ("7d", 604800), ("1.5h", 5400)],
)
def test_durations_read_seconds_minutes_hours_and_days(text: str, seconds: float):
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7 days", "-1d", "1y", "d"])
def test_a_duration_that_is_not_one_is_refused(text: str):
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)
