"""A workflow across real worker processes: a worker killed (SIGKILL) in the middle of
a chord's header leaves it to the next worker, and the body runs once with every
result."""

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

from taskrunner import JobStatus, TaskRunner, chord

APP = f"{APPS}.workflow_app:runner"
WIDTH = 4  # header steps; the odd ones hang on their first attempt


def body_runs(folder: Path, job_id: int) -> list[str]:
    return sorted(p.name for p in folder.glob(f"{job_id}.body.*"))


@pytest.fixture
async def tr(
    pg_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TaskRunner]:
    app = import_app("workflow_app", monkeypatch)
    async with TaskRunner(pg_dsn, schema=schema) as runner:
        mirror(runner, [app.part, app.body])
        yield runner


async def test_a_chord_whose_worker_is_killed_mid_header_ends_with_one_body_run_of_every_result(
    tr: TaskRunner, pg_dsn: str, schema: str, tmp_path: Path
) -> None:
    env = environment(pg_dsn, schema)
    wf = await tr.enqueue_workflow(
        chord(
            [tr.tasks["acceptance.wf_part"].s(str(tmp_path), n, n % 2 == 1) for n in range(WIDTH)],
            tr.tasks["acceptance.wf_body"].s(str(tmp_path)),
        )
    )
    header, body = wf.job_ids[:WIDTH], wf.job_ids[WIDTH]
    options = ("--concurrency", str(WIDTH), "--poll-interval", "0.1")

    async with worker_process(APP, env, tmp_path / "first.log", *options) as first:
        for n, job_id in enumerate(header):
            event = "started" if n % 2 else "finished"
            await wait_for_file(tmp_path / f"{job_id}.{event}.1", 20, first)

        for job_id in header[0::2]:  # the quick steps' acks are written
            assert (await tr.wait(job_id, timeout=10)).status is JobStatus.SUCCEEDED
        first.send(signal.SIGKILL)
        assert await first.exit_code(10) == -signal.SIGKILL
    waiting = await tr.get_job(body)
    assert waiting is not None
    assert waiting.status is JobStatus.WAITING  # half its parents done, half stranded

    async with worker_process(APP, env, tmp_path / "second.log", *options) as second:
        done = await tr.wait_workflow(wf.id, timeout=30)
        second.send(signal.SIGTERM)
        assert await second.exit_code(15) == 0, second.log()

    assert done.status == "succeeded"
    assert await tr.workflow_result(wf.id) == [n * 10 for n in range(WIDTH)]
    runs = body_runs(tmp_path, body)
    assert runs == [f"{body}.body.1"]  # once, by the second worker
    assert (tmp_path / runs[0]).read_text() == str(second.pid)
    for n, job_id in enumerate(header):  # the stranded ones ran again there
        if n % 2:
            assert (tmp_path / f"{job_id}.finished.2").read_text() == str(second.pid)
