"""Real worker processes and signals: a killed worker's job runs again elsewhere; a
terminated worker finishes its running job, leaves the rest queued and exits 0."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from acceptance_helpers import (
    APPS,
    environment,
    import_app,
    mirror,
    wait_for_file,
    worker_process,
)

from taskrunner import JobStatus, TaskRunner

APP = f"{APPS}.signals_app:runner"


@pytest.fixture
async def tr(
    pg_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TaskRunner]:
    app = import_app("signals_app", monkeypatch)
    async with TaskRunner(pg_dsn, schema=schema) as runner:
        mirror(runner, [app.hold])
        yield runner


async def test_a_job_of_a_killed_worker_runs_again_on_the_next_worker_and_succeeds(
    tr: TaskRunner, pg_dsn: str, schema: str, tmp_path: Path
):
    env = environment(pg_dsn, schema)
    job = await tr.enqueue("acceptance.hold", str(tmp_path), 60.0, 0.1)

    async with worker_process(APP, env, tmp_path / "first.log", "--poll-interval", "0.1") as first:
        await wait_for_file(tmp_path / f"{job.id}.started.1", 20, first)
        first.send(signal.SIGKILL)
        assert await first.exit_code(10) == -signal.SIGKILL
    assert (await tr.get_job(job.id)).status is JobStatus.RUNNING  # type: ignore[union-attr]

    async with worker_process(
        APP, env, tmp_path / "second.log", "--poll-interval", "0.1"
    ) as second:
        done = await tr.wait(job.id, timeout=20)
        second.send(signal.SIGTERM)
        assert await second.exit_code(15) == 0

    assert (done.status, done.attempts, done.result) == (JobStatus.SUCCEEDED, 2, 2)
    assert (tmp_path / f"{job.id}.started.1").read_text() == str(first.pid)
    assert (tmp_path / f"{job.id}.finished.2").read_text() == str(second.pid)
    assert not (tmp_path / f"{job.id}.finished.1").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stop_signal_lets_the_running_job_finish_leaves_the_rest_queued_and_exits_0(
    tr: TaskRunner, pg_dsn: str, schema: str, tmp_path: Path, sig: signal.Signals
):
    env = environment(pg_dsn, schema)
    running = await tr.enqueue("acceptance.hold", str(tmp_path), 1.0, 1.0)
    waiting = [await tr.enqueue("acceptance.hold", str(tmp_path), 1.0, 1.0) for _ in range(2)]

    async with worker_process(
        APP, env, tmp_path / "worker.log", "--concurrency", "1", "--poll-interval", "0.1"
    ) as worker:
        await wait_for_file(tmp_path / f"{running.id}.started.1", 20, worker)
        worker.send(sig)
        code = await worker.exit_code(15)

    assert code == 0, worker.log()
    finished = await tr.get_job(running.id)
    assert finished is not None
    assert (finished.status, finished.attempts) == (JobStatus.SUCCEEDED, 1)
    assert (tmp_path / f"{running.id}.finished.1").exists()
    for job in waiting:
        left = await tr.get_job(job.id)
        assert left is not None
        assert (left.status, left.attempts, left.started_at) == (JobStatus.QUEUED, 0, None)
