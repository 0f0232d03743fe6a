"""`run_until_idle`: a worker in the test, until nothing is left to run now."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from taskrunner import Job, JobContext, TaskRunner, TaskRunnerError

DEFAULT_TIMEOUT = 30.0
# Short: a test waits on jobs that become runnable moments after (retries with no wait,
# workflow steps queued by their parent's ack).
POLL_INTERVAL = 0.05


async def run_until_idle(
    runner: TaskRunner,
    *,
    concurrency: int = 4,
    queues: Sequence[str] | str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[Job]:
    """Run a worker of the open `runner` until no job is running or runnable now, and
    return the jobs it ran (each once, in the order they first started, as they are
    now). Delayed and paused jobs do not keep it going; a job that keeps coming back
    (a retry loop with no end) makes it fail with TimeoutError after `timeout` seconds."""
    if not runner.is_open:
        raise TaskRunnerError(
            "run_until_idle needs an open runner (`async with runner:`, or the "
            "fresh_runner fixture)"
        )
    ran: dict[int, None] = {}  # an ordered set of job ids

    async def record(job: JobContext, call_next: Any) -> Any:
        ran.setdefault(job.job_id, None)
        return await call_next()

    # Outermost, so every attempt counts even when a middleware of the application's
    # skips the handler; only for this worker's lifetime (a worker reads the list once).
    runner._middleware.insert(0, record)
    try:
        async with asyncio.timeout(timeout):
            await runner.run_worker(
                queues,
                concurrency=concurrency,
                stop_when_idle=True,
                poll_interval=POLL_INTERVAL,
                handle_signals=False,
            )
    except TimeoutError:
        raise TimeoutError(
            f"run_until_idle: the worker still had jobs to run after {timeout}s "
            f"({len(ran)} jobs ran so far)"
        ) from None
    finally:
        runner._middleware.remove(record)
    jobs = [await runner.get_job(job_id) for job_id in ran]
    return [job for job in jobs if job is not None]
