"""Running one attempt of a job and turning how it ended into its outcome.

Whatever the handler does (returns, raises, is cancelled, even raises SystemExit), the
attempt gets exactly one outcome (runner/outcomes.py); the worker only keeps its slots.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future

from taskrunner.runner.acks import job_log_extra
from taskrunner.runner.codec import ArgumentsError
from taskrunner.runner.context import JobContext
from taskrunner.runner.instruments import Run
from taskrunner.runner.outcomes import Execution, Outcomes

log = logging.getLogger("taskrunner")

__all__ = ["run_attempt"]


async def run_attempt(
    execution: Execution,
    after: asyncio.Task[None] | None,
    *,
    run: Run,
    extend: Callable[[int, float], Future[None]],
    outcomes: Outcomes,
    ran: Callable[[float], None],
) -> None:
    """Run one attempt through `run` (once `after`, an earlier attempt of the job, has
    ended) and hand its outcome to `outcomes`; `ran` learns how long a handler took."""
    job, task = execution.job, execution.task
    ctx = JobContext(
        job_id=job.id,
        task=job.task,
        queue=job.queue,
        attempt=job.attempts,
        max_attempts=job.max_attempts,
        request_id=job.request_id,
        _extend=extend,
    )
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "job %s started (attempt %d of %d)",
            job.id,
            job.attempts,
            job.max_attempts,
            extra=job_log_extra(job),
        )
    try:
        if after is not None and not after.done():
            await asyncio.wait({after})
        execution.started = started = time.monotonic()
        result = await run(task, job, ctx)
        ran(time.monotonic() - started)
    except asyncio.CancelledError as exc:
        if execution.stop_reason is None and not _being_cancelled():
            outcomes.failed(execution, exc, retryable=False)  # the handler's own
        else:
            outcomes.stopped(execution)
    except ArgumentsError as exc:
        outcomes.failed(execution, exc, retryable=False)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: this attempt only
        outcomes.failed(execution, exc, retryable=True)
    else:
        outcomes.succeeded(execution, result)


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
