"""Stopping single attempts while the worker runs: a cancel asked, a lease lost or fenced.

The requests come from other threads' callbacks and LISTEN (lease renewal, fencing,
notifications); each ends at most one attempt, once. A job claimed ahead and not yet
started is dropped instead (runner/prefetch.py), as there is no handler to cancel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from taskrunner.queue import Lease
from taskrunner.runner.acks import AckWriter, job_log_extra
from taskrunner.runner.outcomes import Execution

if TYPE_CHECKING:
    from taskrunner.runner.metrics import Metrics

log = logging.getLogger("taskrunner")

__all__ = ["JobStops"]


class JobStops:
    """Cancels or drops the worker's attempts on request; `acks` and `metrics` are set
    once the worker has opened them."""

    __slots__ = ("_drop_held", "_running", "acks", "metrics")

    def __init__(
        self,
        running: dict[int, Execution],
        drop_held: Callable[[Execution, str], bool],
    ) -> None:
        self._running = running
        self._drop_held = drop_held
        self.acks: AckWriter | None = None
        self.metrics: Metrics | None = None

    def cancel(self, job_id: int) -> None:
        """A cancel of this job was asked."""
        execution = self._running.get(job_id)
        if execution is None or execution.stop_reason is not None:
            return
        if execution.handle is None:
            self._drop_held(execution, "cancel")
            return
        execution.stop_reason = "cancel"
        execution.handle.cancel()

    def lease_lost(self, lease: Lease) -> None:
        """Lease renewal found this lease gone."""
        execution = self._running.get(lease.job_id)
        if execution is not None and execution.lease == lease:
            self.stop_lost(execution)

    def stop_lost(self, execution: Execution, why: str | None = None) -> None:
        """Another worker may run this job now: stop this attempt, with no outcome."""
        if execution.stop_reason is not None:
            return
        log.warning(
            "job %s lost its lease (%s); %s",
            execution.job.id,
            why or "it expired and the job was claimed again",
            "stopping this attempt" if execution.handle else "it was claimed ahead: not run",
            extra=job_log_extra(execution.job),
        )
        if execution.handle is None:
            self._drop_held(execution, "lost")
            return
        execution.stop_reason = "lost"
        execution.handle.cancel()
        if self.metrics is not None:
            self.metrics.count_lease_lost()

    def fenced(self, lease: Lease) -> None:
        """No renewal of this lease got through for most of its length (runner/fencing.py):
        stop its handler before the lease can run out and another worker take the job."""
        execution = self._running.get(lease.job_id)
        if execution is not None and execution.lease == lease:
            if self.acks is not None:  # until its lease runs out, the row is ours
                self.acks.given_up.add(lease.job_id)
            self.stop_lost(execution, "no renewal got through in time; it may run out")
