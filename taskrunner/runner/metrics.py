"""Prometheus metrics of a worker: `run_worker(metrics_port=9464)`.

Imported only when a metrics port is given (runner/instruments.py). Each worker has a
registry of its own, not prometheus_client's global one, so two workers (or tests) in
one process never share or clash over counters. The endpoint is served by a thread of
prometheus_client's; it is started before the worker claims anything (a port in use
fails the start) and stopped at the worker's end.

The gauge of jobs per queue and status is read from the database when scraped (at most
once a second, within a bounded time): a scrape that finds the database down or slow
gets the last known counts, and the worker carries on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from taskrunner.errors import TaskRunnerError
from taskrunner.queue import EnqueueResult, JobQueue, JobRow, NewJob, QueueCount
from taskrunner.runner.context import JobContext
from taskrunner.runner.failures import safe_str

if TYPE_CHECKING:
    from taskrunner.runner.instruments import Run, Write
    from taskrunner.runner.tasks import Task

log = logging.getLogger("taskrunner")

COUNTS_EVERY = 1.0  # seconds: scrapes closer together than this share one count
COUNTS_TIMEOUT = 5.0  # a count that takes longer is given up: the scrape gets the last
STOP_TIMEOUT = 5.0
_DURATIONS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
_WAITS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)


class Metrics:
    """The metrics instrument of one worker, and its endpoint."""

    def __init__(self, queue: JobQueue, port: int, addr: str = "0.0.0.0") -> None:
        self.port = port
        self.addr = addr
        self.registry = CollectorRegistry()
        r = self.registry
        self.enqueued = Counter(
            "taskrunner_jobs_enqueued",
            "Jobs enqueued by this process.",
            ["task", "queue"],
            registry=r,
        )
        self.finished = Counter(
            "taskrunner_jobs_finished",
            "Attempts that ended, by outcome: succeeded, failed (it raised; it may be "
            "retried) or stopped (cancelled, its lease lost, or the worker stopping).",
            ["task", "queue", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "taskrunner_job_duration_seconds",
            "How long attempts ran.",
            ["task", "queue"],
            buckets=_DURATIONS,
            registry=r,
        )
        self.wait = Histogram(
            "taskrunner_job_wait_seconds",
            "How long jobs waited to start once due (start minus run_at).",
            ["queue"],
            buckets=_WAITS,
            registry=r,
        )
        self.rescued = Counter(
            "taskrunner_jobs_rescued",
            "Jobs of dead workers (leases run out) that this worker gave back to their "
            "queue, or failed after their last attempt.",
            registry=r,
        )
        self.lease_lost = Counter(
            "taskrunner_lease_lost",
            "Attempts this worker stopped because it lost the job's lease.",
            registry=r,
        )
        self.counts = QueueCounts(queue)
        r.register(self.counts)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # ---- the endpoint --------------------------------------------------------------

    def start(self) -> None:
        """Serve /metrics; a port that cannot be bound is a TaskRunnerError, at once."""
        self.counts.loop = asyncio.get_running_loop()
        try:
            self._server, self._thread = start_http_server(
                self.port, addr=self.addr, registry=self.registry
            )
        except OSError as exc:
            raise TaskRunnerError(
                f"cannot serve metrics on {self.addr}:{self.port}: {exc.strerror or exc}"
                " (is another worker using that port? choose another --metrics-port)"
            ) from None
        log.info("metrics at http://%s:%d/metrics", self.addr, self.port)

    def stop(self) -> None:
        """Stop serving (blocking: call it off the event loop)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)

    # ---- the instrument ------------------------------------------------------------

    async def send(self, jobs: list[NewJob], write: Write) -> list[EnqueueResult]:
        results = await write(jobs)
        first = jobs[0]
        written = sum(not r.deduplicated for r in results)
        if written:
            self.enqueued.labels(first.task, first.queue).inc(written)
        return results

    async def attempt(self, run: Run, task: Task[..., Any], job: JobRow, ctx: JobContext) -> bytes:
        if job.started_at is not None:
            self.wait.labels(job.queue).observe(
                max(0.0, (job.started_at - job.run_at).total_seconds())
            )
        status = "failed"
        started = time.perf_counter()
        try:
            result = await run(task, job, ctx)
            status = "succeeded"
            return result
        except asyncio.CancelledError:
            status = "stopped"
            raise
        finally:
            self.duration.labels(job.task, job.queue).observe(time.perf_counter() - started)
            self.finished.labels(job.task, job.queue, status).inc()

    def count_rescued(self, count: int) -> None:
        self.rescued.inc(count)

    def count_lease_lost(self) -> None:
        self.lease_lost.inc()


class QueueCounts(Collector):
    """`taskrunner_queue_jobs{queue,status}`: read from the database at scrape time, on
    the worker's event loop (the scrape runs in the server's thread)."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue
        self.loop: asyncio.AbstractEventLoop | None = None
        self._last: dict[tuple[str, str], int] = {}
        self._read_at = -COUNTS_EVERY
        self._lock = threading.Lock()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            if time.monotonic() - self._read_at >= COUNTS_EVERY:
                self._refresh()
            counts = dict(self._last)
        gauge = GaugeMetricFamily(
            "taskrunner_queue_jobs",
            "Jobs in the database by queue and status.",
            labels=["queue", "status"],
        )
        for (queue, status), count in sorted(counts.items()):
            gauge.add_metric([queue, status], count)
        yield gauge

    async def _stats(self) -> list[QueueCount]:
        return await self.queue.stats()

    def _refresh(self) -> None:
        if self.loop is None or self.loop.is_closed():
            return
        self._read_at = time.monotonic()  # a failed count too: tried again a second later
        future = asyncio.run_coroutine_threadsafe(self._stats(), self.loop)
        try:
            rows = future.result(COUNTS_TIMEOUT)
        except Exception as exc:  # the database is down or slow: the last counts stand
            future.cancel()
            log.warning(
                "metrics: could not count jobs (%s: %s); serving the last counts",
                type(exc).__name__,
                safe_str(exc),
            )
            return
        counts = dict.fromkeys(self._last, 0)  # a status that emptied shows 0, not nothing
        counts.update({(r.queue, r.status): r.count for r in rows})
        self._last = counts
