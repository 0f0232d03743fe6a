"""`taskrunner worker --metrics-port PORT`: a real worker process serves its metrics at
/metrics over HTTP, with the counts of what it ran."""

from __future__ import annotations

import asyncio
import signal
import socket
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from acceptance_helpers import APPS, environment, import_app, mirror, run_cli, worker_process
from prometheus_client.parser import text_string_to_metric_families

from taskrunner import JobStatus, TaskRunner

APP = f"{APPS}.metrics_app:runner"


@pytest.fixture
async def tr(
    pg_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TaskRunner]:
    app = import_app("metrics_app", monkeypatch)
    async with TaskRunner(pg_dsn, schema=schema) as runner:
        mirror(runner, [app.ok, app.boom, app.fan_out])
        yield runner


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_a_worker_serves_the_metrics_of_the_jobs_it_ran(
    tr: TaskRunner, pg_dsn: str, schema: str, tmp_path: Path
):
    port = free_port()
    jobs = [await tr.enqueue("metrics.ok", n) for n in range(3)]
    jobs.append(await tr.enqueue("metrics.boom"))
    jobs.append(await tr.enqueue("metrics.fan_out", 2))

    async with worker_process(
        APP,
        environment(pg_dsn, schema),
        tmp_path / "worker.log",
        "--metrics-port",
        str(port),
        "--poll-interval",
        "0.1",
    ) as worker:
        for job in jobs:
            await tr.wait(job.id, timeout=20)
        # the two jobs fan_out enqueued
        fanned = [
            j for j in await tr.list_jobs(task="metrics.ok") if j.id not in {job.id for job in jobs}
        ]
        assert len(fanned) == 2
        for job in fanned:
            await tr.wait(job.id, timeout=20)
        metrics = await asyncio.to_thread(scrape, port)
        worker.send(signal.SIGTERM)
        assert await worker.exit_code(15) == 0, worker.log()

    def value(name: str, **labels: str) -> float | None:
        return metrics.get((name, tuple(sorted(labels.items()))))

    ok, boom, fan = "metrics.ok", "metrics.boom", "metrics.fan_out"
    assert value("taskrunner_jobs_enqueued_total", task=ok, queue="mq") == 2
    assert value("taskrunner_jobs_finished_total", task=ok, queue="mq", status="succeeded") == 5
    assert value("taskrunner_jobs_finished_total", task=fan, queue="mq", status="succeeded") == 1
    assert value("taskrunner_jobs_finished_total", task=boom, queue="mq", status="failed") == 1
    assert value("taskrunner_job_duration_seconds_count", task=ok, queue="mq") == 5
    assert value("taskrunner_job_wait_seconds_count", queue="mq") == 7
    assert value("taskrunner_queue_jobs", queue="mq", status="succeeded") == 6
    assert value("taskrunner_queue_jobs", queue="mq", status="failed") == 1
    assert value("taskrunner_jobs_rescued_total") == 0
    assert value("taskrunner_lease_lost_total") == 0
    assert (await tr.get_job(jobs[3].id)).status is JobStatus.FAILED  # type: ignore[union-attr]


async def test_a_worker_whose_metrics_port_is_in_use_exits_at_once_saying_so(
    tr: TaskRunner, pg_dsn: str, schema: str
):
    job = await tr.enqueue("metrics.ok", 1)
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = await run_cli(
            "worker", APP, "--metrics-port", str(port), env=environment(pg_dsn, schema)
        )

    assert done.code == 1
    assert f"cannot serve metrics on 0.0.0.0:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert (await tr.get_job(job.id)).status is JobStatus.QUEUED  # type: ignore[union-attr]
