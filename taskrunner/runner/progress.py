"""A worker's progress line: once a minute in which attempts ended, one INFO line with how
many succeeded, failed and will be retried, or failed for good, and how many run now.

A busy worker shows that it is alive and what it does without a line per job, which
would cost the hot path a log record per attempt (`LogAttempts` gives those, opted in).
A quiet minute logs nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sized
from dataclasses import dataclass

from taskrunner.runner.supervise import start_supervised

log = logging.getLogger("taskrunner")

PROGRESS_INTERVAL = 60.0  # seconds between two lines (read when the loop starts)


@dataclass(slots=True)
class Progress:
    """Counts of attempts that ended since the last line."""

    succeeded: int = 0
    retrying: int = 0
    failed: int = 0

    def take(self) -> tuple[int, int, int]:
        """The counts, reset to zero."""
        counts = (self.succeeded, self.retrying, self.failed)
        self.succeeded = self.retrying = self.failed = 0
        return counts


def start_progress_line(progress: Progress, owner: str, running: Sized) -> asyncio.Task[None]:
    """The progress line's loop, supervised, in a task of its own; `running` holds the
    worker's running jobs."""
    return start_supervised("progress", lambda: log_progress(progress, owner, running))


async def log_progress(progress: Progress, owner: str, running: Sized) -> None:
    """Every PROGRESS_INTERVAL seconds, the line for the attempts that ended meanwhile."""
    interval = PROGRESS_INTERVAL
    while True:
        await asyncio.sleep(interval)
        succeeded, retrying, failed = progress.take()
        if succeeded + retrying + failed == 0:
            continue
        log.info(
            "worker %s: in the last %gs %d attempts succeeded, %d failed and will be "
            "retried, %d failed for good; %d running",
            owner,
            interval,
            succeeded,
            retrying,
            failed,
            len(running),
            extra={
                "succeeded": succeeded,
                "retrying": retrying,
                "failed": failed,
                "running": len(running),
            },
        )
