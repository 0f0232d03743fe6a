"""Stopping a worker whose database went away (a black-holed link, through a private
proxy): it still ends within its shutdown timeout plus a few seconds, at once on a
second signal; it names the jobs whose outcomes it could not write, and those run again
elsewhere once their leases run out."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from acceptance_helpers import (
    APPS,
    WorkerProcess,
    black_hole_proxy,
    environment,
    import_app,
    mirror,
    wait_for_file,
    worker_process,
)

from taskrunner import JobStatus, TaskRunner

pytestmark = pytest.mark.slow

APP = f"{APPS}.signals_app:runner"  # acceptance.hold_cut_off: a 4 s lease, 3 attempts
SHUTDOWN_TIMEOUT = 2.0
A_FEW_SECONDS = 8.0


async def wait_for_log(worker: WorkerProcess, text: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in worker.log():
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{worker.log()}"
        await asyncio.sleep(0.02)


@pytest.fixture
async def tr(
    pg_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TaskRunner]:
    app = import_app("signals_app", monkeypatch)
    async with TaskRunner(pg_dsn, schema=schema) as runner:
        mirror(runner, [app.hold_cut_off])
        yield runner


async def test_a_worker_cut_off_from_its_database_stops_in_time_and_its_unwritten_job_runs_again(
    tr: TaskRunner, pg_dsn: str, schema: str, tmp_path: Path
):
    job = await tr.enqueue("acceptance.hold_cut_off", str(tmp_path), 1.0, 0.0)
    async with black_hole_proxy(pg_dsn) as proxy:
        env = environment(proxy.dsn(pg_dsn), schema)
        options = ("--shutdown-timeout", str(SHUTDOWN_TIMEOUT), "--poll-interval", "0.1")
        async with worker_process(APP, env, tmp_path / "cut-off.log", *options) as worker:
            await wait_for_file(tmp_path / f"{job.id}.started.1", 20, worker)
            await proxy.block()
            await wait_for_file(tmp_path / f"{job.id}.finished.1", 10, worker)
            asked = time.monotonic()
            worker.send(signal.SIGTERM)
            await worker.exit_code(SHUTDOWN_TIMEOUT + A_FEW_SECONDS)
            took = time.monotonic() - asked

    assert took < SHUTDOWN_TIMEOUT + A_FEW_SECONDS
    assert "could not write the outcomes of 1 job(s)" in worker.log()
    assert f": {job.id};" in worker.log()
    async with worker_process(
        APP, environment(pg_dsn, schema), tmp_path / "next.log", "--poll-interval", "0.1"
    ) as second:
        done = await tr.wait(job.id, timeout=20)
        second.send(signal.SIGTERM)
        await second.exit_code(15)
    assert (done.status, done.result) == (JobStatus.SUCCEEDED, 2)  # attempt 2 ran it again


async def test_a_second_signal_ends_a_worker_cut_off_from_its_database_at_once(
    tr: TaskRunner, pg_dsn: str, schema: str, tmp_path: Path
):
    job = await tr.enqueue("acceptance.hold_cut_off", str(tmp_path), 60.0, 0.0)
    async with black_hole_proxy(pg_dsn) as proxy:
        env = environment(proxy.dsn(pg_dsn), schema)
        options = ("--shutdown-timeout", "60", "--poll-interval", "0.1")
        async with worker_process(APP, env, tmp_path / "cut-off.log", *options) as worker:
            await wait_for_file(tmp_path / f"{job.id}.started.1", 20, worker)
            await proxy.block()
            worker.send(signal.SIGTERM)
            await wait_for_log(worker, "waiting up to 60s")  # else the signals merge
            worker.send(signal.SIGTERM)
            asked = time.monotonic()
            await worker.exit_code(A_FEW_SECONDS)
            took = time.monotonic() - asked

    assert took < 4.0, worker.log()
    assert f"could not hand job(s) {job.id} back" in worker.log()
