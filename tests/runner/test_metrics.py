"""run_worker(metrics_port=...): Prometheus metrics of a worker, served while it runs.

Scraping a real worker process over HTTP is tests/acceptance/test_metrics_endpoint.py;
these run a worker in-process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from worker_helpers import background_worker, run_until_idle, settings

from taskrunner import JobStatus, TaskRunner
from taskrunner.errors import InvalidArguments, TaskRunnerError
from taskrunner.queue import JobQueue
from taskrunner.runner.metrics import QueueCounts
from taskrunner.runner.worker import Worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text: str = reply.read().decode()
        return text


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "not within the timeout"
        await asyncio.sleep(0.02)


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        yield s.getsockname()[1]


async def test_a_metrics_port_in_use_is_a_clear_error_at_start_and_nothing_is_claimed(
    tr: TaskRunner,
):
    @tr.task
    async def noop() -> None:
        pass

    job = await noop.enqueue()
    with taken_port() as port, pytest.raises(TaskRunnerError, match=f"{port}.*metrics-port"):
        await run_until_idle(tr, metrics_port=port)

    assert (await tr.get_job(job.id)).status is JobStatus.QUEUED  # type: ignore[union-attr]


async def test_the_metrics_server_stops_with_the_worker(tr: TaskRunner):
    @tr.task
    async def noop() -> None:
        pass

    await noop.enqueue()
    port = free_port()
    async with background_worker(tr, metrics_port=port) as worker:
        await eventually(lambda: worker.worker.running == {} and worker.worker._metrics is not None)
        assert "taskrunner_jobs_finished_total" in await asyncio.to_thread(scrape, port)
        await worker.stop()

    with pytest.raises(urllib.error.URLError):
        await asyncio.to_thread(scrape, port)


async def test_a_bad_metrics_port_is_refused_before_the_worker_starts(tr: TaskRunner):
    with pytest.raises(InvalidArguments, match="metrics_port"):
        await tr.run_worker(metrics_port=70000, stop_when_idle=True, handle_signals=False)


async def test_rescued_jobs_and_lost_leases_are_counted(tr: TaskRunner):
    release = asyncio.Event()

    @tr.task(lease=1.0)
    async def hold() -> None:
        await asyncio.wait_for(release.wait(), 20)

    abandoned = await hold.enqueue()
    await tr.job_queue.claim([hold.name], limit=1, owner="dead", lease={hold.name: 0.01})
    async with background_worker(tr, metrics_port=free_port(), rescue_interval=0.05) as bg:
        await eventually(lambda: abandoned.id in bg.worker.running)
        metrics = bg.worker._metrics
        assert metrics is not None
        assert metrics.registry.get_sample_value("taskrunner_jobs_rescued_total") == 1.0

        await tr.job_queue.db.execute(  # another claim took the job: this lease is lost
            f'UPDATE "{tr.schema}".jobs SET lease_id = lease_id + 1 WHERE id = $1',
            abandoned.id,
        )
        await eventually(
            lambda: metrics.registry.get_sample_value("taskrunner_lease_lost_total") == 1.0
        )
        release.set()
        await bg.stop()


async def test_a_database_error_while_counting_keeps_the_last_counts_and_logs(
    tr: TaskRunner, caplog: pytest.LogCaptureFixture
):
    counts = QueueCounts(JobQueue(tr.job_queue.db, "no_such_schema"))
    counts.loop = asyncio.get_running_loop()

    with caplog.at_level(logging.WARNING, "taskrunner"):
        (gauge,) = await asyncio.to_thread(lambda: list(counts.collect()))

    assert gauge.name == "taskrunner_queue_jobs"
    assert gauge.samples == []
    assert "could not count jobs" in caplog.text


async def test_the_wait_is_the_start_minus_run_at_and_the_duration_how_long_it_ran(
    tr: TaskRunner,
):
    @tr.task(queue="late")
    async def nap() -> None:
        await asyncio.sleep(0.2)

    await nap.enqueue(run_at=datetime.now(UTC) - timedelta(seconds=60))
    worker = Worker(tr, settings(stop_when_idle=True, metrics_port=free_port()))
    await asyncio.wait_for(worker.run(), 30)

    assert worker._metrics is not None
    sample = worker._metrics.registry.get_sample_value
    assert 60 <= sample("taskrunner_job_wait_seconds_sum", {"queue": "late"}) < 90  # type: ignore[operator]
    took = sample("taskrunner_job_duration_seconds_sum", {"task": nap.name, "queue": "late"})
    assert took is not None
    assert 0.2 <= took < 5
