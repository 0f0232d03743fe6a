"""What becomes of an attempt once its handler has returned, raised or been stopped.

Whatever happened, the attempt gets an outcome: a result for the ack writer, a failure
(its description cannot fail, see runner/failures.py; a retry policy that raises means
no retry), a hand-back at shutdown, or nothing at all for an attempt whose lease was
lost (another worker runs the job now).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from taskrunner.queue import JobRow, Lease
from taskrunner.runner.acks import AckWriter, job_log_extra
from taskrunner.runner.failures import error_text, safe_str
from taskrunner.runner.leases import LeaseKeeper
from taskrunner.runner.progress import Progress
from taskrunner.runner.tasks import Task

log = logging.getLogger("taskrunner")


@dataclass(slots=True)
class Execution:
    job: JobRow
    task: Task[..., Any]
    lease: Lease
    handle: asyncio.Task[None] | None = None
    stop_reason: str | None = None  # "cancel", "shutdown" or "lost"
    started: float = 0.0  # time.monotonic() when the handler was started

    def took(self) -> float:
        return time.monotonic() - self.started if self.started else 0.0


@dataclass(slots=True)
class Outcomes:
    """Records outcomes of one worker's attempts."""

    acks: AckWriter
    keeper: LeaseKeeper
    to_release: list[Lease] = field(default_factory=list)  # handed back at shutdown
    # The workflows of the steps among them (locked first by the hand-back).
    to_release_workflows: list[int] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)  # for the worker's progress line

    def succeeded(self, execution: Execution, result: bytes) -> None:
        if execution.stop_reason == "lost":
            self.keeper.drop((execution.lease,))
        else:
            self.progress.succeeded += 1
            self.acks.complete(execution.job, execution.lease, result)
            if log.isEnabledFor(logging.INFO):  # one line per job's end, off when quiet
                job = execution.job
                log.info(
                    "job %s %s succeeded in %.3fs (attempt %d of %d)",
                    job.id,
                    job.task,
                    execution.took(),
                    job.attempts,
                    job.max_attempts,
                    extra=job_log_extra(job),
                )

    def failed(self, execution: Execution, exc: BaseException, *, retryable: bool) -> None:
        """The handler raised `exc` (any exception: SystemExit and KeyboardInterrupt
        fail this attempt only); with `retryable` the task's retry policy decides."""
        job = execution.job
        if execution.stop_reason == "lost":
            self.keeper.drop((execution.lease,))
            return
        retry_in = self._retry_delay(execution, exc) if retryable else None
        will_retry = retry_in is not None and job.attempts < job.max_attempts
        log.log(
            logging.WARNING if will_retry else logging.ERROR,
            "job %s %s failed in %.3fs (attempt %d of %d): %s: %s%s",
            job.id,
            job.task,
            execution.took(),
            job.attempts,
            job.max_attempts,
            type(exc).__name__,
            safe_str(exc),
            f"; retrying in {retry_in:.1f}s" if will_retry and retry_in is not None else "",
            extra=job_log_extra(job),
        )
        if will_retry:
            self.progress.retrying += 1
        else:
            self.progress.failed += 1
        self.acks.fail(job, execution.lease, error_text(exc), retry_in)

    def stopped(self, execution: Execution) -> None:
        """The worker stopped the handler: a cancel, a shutdown or a lost lease."""
        job = execution.job
        if execution.stop_reason == "cancel":
            log.info("job %s cancelled while running", job.id, extra=job_log_extra(job))
            self.acks.fail(job, execution.lease, "cancelled while running", None)
        elif execution.stop_reason == "lost":
            self.keeper.drop((execution.lease,))
        else:
            log.info("job %s handed back to the queue", job.id, extra=job_log_extra(job))
            self.to_release.append(execution.lease)
            if job.workflow_id is not None:
                self.to_release_workflows.append(job.workflow_id)

    @staticmethod
    def _retry_delay(execution: Execution, exc: BaseException) -> float | None:
        job = execution.job
        try:
            return execution.task.retry.delay_after(exc, job.attempts)
        except Exception as policy_error:
            log.error(
                "job %s: the retry policy of task %s raised %s: %s; no retry",
                job.id,
                job.task,
                type(policy_error).__name__,
                safe_str(policy_error),
                extra=job_log_extra(job),
            )
            return None
