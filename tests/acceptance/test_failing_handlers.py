"""A real `taskrunner worker --stop-when-idle` over handlers that fail badly: every job
ends in a final status, the worker outlives them all and exits 0 only once it is idle."""

from __future__ import annotations

from pathlib import Path

import pytest
from acceptance_helpers import APPS, environment, import_app, mirror, worker_process

from taskrunner import JobStatus, TaskRunner

APP = f"{APPS}.failures_app:runner"


@pytest.fixture
async def tr(pg_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch):
    app = import_app("failures_app", monkeypatch)
    async with TaskRunner(pg_dsn, schema=schema) as runner:
        mirror(runner, [app.nul_result, app.unprintable, app.exits, app.interrupts, app.fine])
        yield runner


async def test_a_worker_gives_every_badly_failing_job_an_outcome_and_exits_0_once_idle(
    tr: TaskRunner, pg_dsn: str, schema: str, tmp_path: Path
):
    bad = {
        name: await tr.enqueue(f"failures.{name}")
        for name in ("nul_result", "unprintable", "exits", "interrupts")
    }
    fine = [await tr.enqueue("failures.fine", i) for i in range(5)]

    async with worker_process(
        APP,
        environment(pg_dsn, schema),
        tmp_path / "worker.log",
        "--stop-when-idle",
        "--poll-interval",
        "0.1",
    ) as worker:
        code = await worker.exit_code(30)

    log = worker.log()
    assert code == 0, log
    for name, job in bad.items():
        ended = await tr.get_job(job.id)
        assert ended is not None
        assert ended.status is JobStatus.FAILED, (name, ended.status, log)
    nul = await tr.get_job(bad["nul_result"].id)
    assert nul is not None
    assert nul.last_error is not None
    assert nul.last_error.startswith("result could not be stored:")
    for job in fine:
        assert (await tr.result(job.id, timeout=10)) == job.args[0]
    assert "never retrieved" not in log
    assert "another worker took the job over" not in log
