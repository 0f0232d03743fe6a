"""PgBouncer in transaction mode, for real: a private PgBouncer started on a free port in
front of the test server. A worker behind it keeps no prepared statements, sends nothing
PgBouncer refuses at start-up, and LISTENs on a direct connection when given one."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from conftest import need_binary
from pgbouncer_server import pgbouncer

from taskrunner import JobStatus, TaskRunner

ROOT = Path(__file__).resolve().parents[2]

# The promises of the suite that are run through PgBouncer: enqueue (single, batch, by
# name, inside a caller's transaction), the worker, wait/result and the job verbs,
# idempotency keys (also racing from several processes), retries and request ids.
THROUGH_PGBOUNCER = [
    "tests/runner/test_runner_enqueue.py",
    "tests/runner/test_enqueue_many.py",
    "tests/runner/test_idempotency.py",
    "tests/runner/test_worker.py",
    "tests/runner/test_lifecycle.py",
    "tests/runner/test_retries.py",
    "tests/runner/test_request_ids.py",
    "tests/queue/test_enqueue.py",
    "tests/queue/test_enqueue_key_order.py",
    "tests/queue/test_claim.py",
    "tests/queue/test_acks.py",
]
# These cut a worker's server connections by application name; behind a pooler the
# client connections live on and the pooler reconnects, which tests the pooler.
NOT_THROUGH_PGBOUNCER = (
    "not test_a_worker_survives_losing_every_database_connection_while_idle"
    " and not test_a_job_running_while_the_database_connections_are_cut_still_succeeds_once"
)


@pytest.fixture(scope="module")
def bouncer(pg_dsn: str) -> Iterator[tuple[str, Path]]:
    binary = need_binary("pgbouncer", "Debian package pgbouncer; tests of the pooler profile")
    with pgbouncer(binary, pg_dsn) as running:
        yield running


def _refusals(log_file: Path) -> list[str]:
    return re.findall(r".*unsupported startup parameter.*", log_file.read_text())


async def test_a_worker_behind_pgbouncer_runs_every_job_once_and_keys_make_one_job(
    bouncer: tuple[str, Path], bare_schema: str
):
    dsn, log_file = bouncer
    async with TaskRunner(dsn, schema=bare_schema, statement_cache_size=0) as runner:

        @runner.task(name="add")
        async def add(a: int, b: int) -> int:
            return a + b

        plain = [await add.enqueue(n, 1) for n in range(20)]
        plain += await runner.enqueue_many(add, [(n, 2) for n in range(20)])
        keyed = [await add.enqueue(5, 5, idempotency_key="k-5") for _ in range(5)]

        await asyncio.wait_for(
            runner.run_worker(stop_when_idle=True, poll_interval=0.1, handle_signals=False), 30
        )

        assert len({job.id for job in keyed}) == 1
        jobs = [await runner.get_job(job.id) for job in [*plain, keyed[0]]]
        assert all(job is not None and job.status == JobStatus.SUCCEEDED for job in jobs)
        assert await runner.result(keyed[0].id) == 10
    assert _refusals(log_file) == []


async def test_behind_pgbouncer_without_listen_dsn_a_worker_polls_and_says_so(
    bouncer: tuple[str, Path], bare_schema: str, caplog: pytest.LogCaptureFixture
):
    dsn, _ = bouncer
    caplog.set_level(logging.INFO, logger="taskrunner")
    async with TaskRunner(dsn, schema=bare_schema, statement_cache_size=0) as runner:

        @runner.task(name="noop")
        async def noop() -> None:
            return None

        job = await noop.enqueue()
        await asyncio.wait_for(
            runner.run_worker(stop_when_idle=True, poll_interval=0.1, handle_signals=False), 30
        )

        assert (await runner.wait(job.id, timeout=5)).status == JobStatus.SUCCEEDED
    assert "no LISTEN, polling every 0.1s" in caplog.text


async def test_listen_dsn_wakes_a_worker_behind_pgbouncer_long_before_its_poll_interval(
    bouncer: tuple[str, Path], bare_schema: str, pg_dsn: str
):
    dsn, _ = bouncer
    async with TaskRunner(
        dsn, schema=bare_schema, statement_cache_size=0, listen_dsn=pg_dsn
    ) as runner:

        @runner.task(name="noop")
        async def noop() -> str:
            return "woken"

        worker = asyncio.create_task(runner.run_worker(poll_interval=60, handle_signals=False))
        try:
            await asyncio.sleep(0)  # the worker claims nothing, then waits for a wake-up
            await asyncio.wait_for(_until_listening(pg_dsn, bare_schema), 15)
            job = await noop.enqueue()
            assert await runner.result(job.id, timeout=10) == "woken"
        finally:
            worker.cancel()
            with pytest.raises(asyncio.CancelledError):
                await worker


async def _until_listening(direct_dsn: str, schema: str) -> None:
    """Until a session LISTENs on the schema's channels (the worker's, on the direct
    connection; other tests' workers LISTEN too); the caller bounds the wait. Database
    state has no event to wait on."""
    conn = await asyncpg.connect(direct_dsn)
    try:
        while not await conn.fetchval(  # noqa: ASYNC110
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
            " AND position($1 in query) > 0",
            f"{schema}.",
        ):
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


@pytest.mark.slow
@pytest.mark.timeout(300)  # a suite of its own: a minute on a loaded machine, more when it fails
def test_the_suites_enqueue_worker_wait_and_idempotency_promises_hold_through_pgbouncer(
    bouncer: tuple[str, Path], pg_dsn: str
):
    dsn, log_file = bouncer
    env = {
        **os.environ,
        "TASKRUNNER_TEST_DSN": dsn,
        "TASKRUNNER_TEST_POOLER": "1",
        "TASKRUNNER_LISTEN_DSN": pg_dsn,
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "-n", "2",
         "-k", NOT_THROUGH_PGBOUNCER, *THROUGH_PGBOUNCER],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280,
    )  # fmt: skip

    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None, summary
    assert int(passed.group(1)) >= 150, summary
    assert _refusals(log_file) == []


async def test_a_worker_behind_pgbouncer_fences_a_handler_whose_renewals_hang(
    bouncer: tuple[str, Path], bare_schema: str, pg_dsn: str
):
    # Behind the pooler no statement_timeout reaches the server: the renewal's own
    # client-side bound and the fence must do without it.
    dsn, log_file = bouncer
    started, cancelled = asyncio.Event(), asyncio.Event()
    async with TaskRunner(dsn, schema=bare_schema, statement_cache_size=0) as runner:

        @runner.task(name="long", lease=2.0)
        async def long() -> None:
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        job = await long.enqueue()
        worker = asyncio.create_task(
            runner.run_worker(poll_interval=0.1, handle_signals=False, shutdown_timeout=1.0)
        )
        try:
            await asyncio.wait_for(started.wait(), 15)
            direct = await asyncpg.connect(pg_dsn)
            try:
                async with direct.transaction():  # the row locked: renewals hang
                    left = await direct.fetchval(
                        "SELECT extract(epoch FROM lease_expires_at - clock_timestamp())::float8"
                        f' FROM "{bare_schema}".jobs WHERE id = $1 FOR UPDATE',
                        job.id,
                    )
                    await asyncio.wait_for(cancelled.wait(), left)
            finally:
                await direct.close()
        finally:
            worker.cancel()
            await asyncio.wait({worker}, timeout=20)
    assert _refusals(log_file) == []
