"""Middleware: your code around every attempt of every task, in all three executors.

    python examples/middleware.py

A middleware is an async function `(job, call_next)`. It runs on the worker's event
loop around the handler (also when the handler runs in a thread or a child process).
What it returns is the attempt's result; what it raises fails the attempt, retried like
any other. The first registered is the outermost. `LogAttempts` is a ready one: a log
line per attempt with outcome, duration and the job's ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import tenacity

from taskrunner import JobContext, LogAttempts, Retry, TaskRunner

logging.basicConfig(level=logging.WARNING, format="%(levelname)-7s %(name)s: %(message)s")
logging.getLogger("taskrunner.attempts").setLevel(logging.INFO)

# LogAttempts is the outermost: it sees the outcome of everything inside it.
runner = TaskRunner(schema="taskrunner_middleware_example", middleware=[LogAttempts()])
timings: dict[str, float] = {}


@runner.middleware
async def timing(job: JobContext, call_next: Callable[[], Awaitable[Any]]) -> Any:
    started = time.perf_counter()
    try:
        return await call_next()
    finally:
        timings[f"{job.task}#{job.attempt}"] = time.perf_counter() - started


@runner.middleware
async def maintenance_window(job: JobContext, call_next: Callable[[], Awaitable[Any]]) -> Any:
    """Refuse the first attempt of every job, as a gate in front of an API might."""
    if job.attempt == 1:
        raise ConnectionError("the upstream API is in its maintenance window")
    return await call_next()


@runner.task(retry=Retry(max_attempts=3, wait=tenacity.wait_none()))
def resize_image(name: str) -> str:  # a thread job: middleware wraps it too
    time.sleep(0.05)
    return f"{name} resized"


async def main() -> None:
    async with runner:
        await runner.job_queue.clear()
        job = await resize_image.enqueue("cat.png")
        await runner.run_worker(stop_when_idle=True, handle_signals=False, poll_interval=0.1)
        done = await runner.wait(job.id, timeout=10)
        print(f"{done.task}: {done.status.value} after {done.attempts} attempts -> {done.result}")
        for attempt, took in sorted(timings.items()):
            print(f"timed {attempt}: {took:.3f}s")


if __name__ == "__main__":
    asyncio.run(main())
