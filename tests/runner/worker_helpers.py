"""Helpers for the worker-side tests: open runners, background workers, waiting.

Imported by the test modules of this folder (`from worker_helpers import ...`); it
defines no fixtures, so it never clashes with tests/runner/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from taskrunner import TaskRunner
from taskrunner.db import ResolvedDsn, connect
from taskrunner.queue import JobQueue, JobRow
from taskrunner.runner.worker import Worker, WorkerSettings

STOP_TIMEOUT = 20.0


def settings(**overrides: Any) -> WorkerSettings:
    """Worker settings for tests: fast polling and rescue, no signal handlers."""
    values: dict[str, Any] = {
        "queues": None,
        "concurrency": 4,
        "stop_when_idle": False,
        "shutdown_timeout": 10.0,
        "poll_interval": 0.05,
        "rescue_interval": 0.2,
        "handle_signals": False,
    }
    values.update(overrides)
    if isinstance(values["queues"], list):
        values["queues"] = tuple(values["queues"])
    return WorkerSettings(**values)


@contextlib.asynccontextmanager
async def open_runner(dsn: str, schema: str) -> AsyncIterator[TaskRunner]:
    async with TaskRunner(dsn, schema=schema) as runner:
        yield runner


async def run_until_idle(runner: TaskRunner, timeout: float = 30.0, **overrides: Any) -> None:
    """Run one worker with stop_when_idle until it returns (bounded by `timeout`)."""
    worker = Worker(runner, settings(stop_when_idle=True, **overrides))
    await asyncio.wait_for(worker.run(), timeout)


@dataclass
class BackgroundWorker:
    worker: Worker
    task: asyncio.Task[None]

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Ask the worker to stop and wait until its run() returned."""
        self.worker.request_stop()
        await asyncio.wait_for(asyncio.shield(self.task), timeout)


@contextlib.asynccontextmanager
async def background_worker(
    runner: TaskRunner, **overrides: Any
) -> AsyncIterator[BackgroundWorker]:
    """A worker running in a task of its own for the duration of the block."""
    worker = Worker(runner, settings(**overrides))
    handle = asyncio.create_task(worker.run(), name="test-worker")
    background = BackgroundWorker(worker, handle)
    try:
        yield background
    finally:
        if not handle.done():
            worker.request_stop()
            try:
                await asyncio.wait_for(asyncio.shield(handle), STOP_TIMEOUT)
            except TimeoutError:
                handle.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await handle
        elif not handle.cancelled() and handle.exception() is not None:
            raise handle.exception()  # type: ignore[misc]


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> None:
    """Wait until `check()` is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{message} not reached within {timeout}s")
        await asyncio.sleep(interval)


async def row(runner: TaskRunner, job_id: int) -> JobRow:
    found = await runner.job_queue.get(job_id)
    assert found is not None, f"job {job_id} vanished"
    return found


async def db_now(runner: TaskRunner) -> datetime:
    return await runner.job_queue.db.fetchval("SELECT now()")  # type: ignore[no-any-return]


@dataclass
class Concurrency:
    """Counts handlers running at once (all on one event loop)."""

    now: int = 0
    peak: int = 0
    started: list[int] = field(default_factory=list)

    @contextlib.contextmanager
    def running(self, job_id: int = 0) -> Any:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.started.append(job_id)
        try:
            yield
        finally:
            self.now -= 1


class Rescuer:
    """Calls rescue_expired() over and over from a thread with its own event loop and
    connection, so it keeps going while the test's event loop is blocked."""

    def __init__(self, target: ResolvedDsn, schema: str, interval: float = 0.1) -> None:
        self.target = target
        self.schema = schema
        self.interval = interval
        self.rescued: list[tuple[int, str]] = []
        self.calls = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="test-rescuer", daemon=True)

    def __enter__(self) -> Rescuer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _main(self) -> None:
        async def loop() -> None:
            conn = await connect(self.target)
            try:
                queue = JobQueue(conn, self.schema)
                self._ready.set()
                while not self._stop.is_set():
                    self.rescued.extend(await queue.rescue_expired())
                    self.calls += 1
                    await asyncio.sleep(self.interval)
            finally:
                await conn.close()

        try:
            asyncio.run(loop())
        except BaseException as exc:
            self.errors.append(exc)
            self._ready.set()


async def max_loop_lag(until: asyncio.Future[Any] | asyncio.Task[Any], tick: float = 0.01) -> float:
    """Sample the event loop every `tick` seconds until `until` is done; the worst lag."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    while not until.done():
        before = loop.time()
        await asyncio.sleep(tick)
        worst = max(worst, loop.time() - before - tick)
    return worst


@dataclass
class Endless:
    """A task that runs until cancelled, with events for its start and its cancellation."""

    task: Any
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)


def endless_task(runner: TaskRunner, **options: Any) -> Endless:
    """Registered with `options` (those of `@runner.task`)."""
    endless = Endless(task=None)

    @runner.task(**options)
    async def endless_handler() -> None:
        endless.started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            endless.cancelled.set()
            raise

    endless.task = endless_handler
    return endless
