"""Claiming ahead of free slots while the queue has a backlog of short jobs.

A claim commits durably (its WAL flushed) before any of its handlers may start, and that
flush, not the handlers, bounds how fast a worker gets through short jobs: one claim
round trip per batch of at most `concurrency` jobs. So while the jobs are short and the
last ordinary claim came back full, a claim also takes up to `extra` jobs beyond the free
slots. They are claimed like any other (running in the database, their attempt counted,
their lease renewed and fenced), wait here in claim order, and start as slots free up.

The bound keeps it fair to other workers: never more than `extra` jobs are held here,
and no more than the slots get through in LOCAL_WAIT at the handlers' running mean time,
so a held job waits about that long (none are claimed ahead of handlers slower than
LOCAL_WAIT, nor before a claim came back full). Limited and paused queues are never
claimed ahead (runner/limited_claims.py): their claims ask for free slots only. A held
job whose cancel is asked ends cancelled, one whose lease is lost is dropped, and at
shutdown the held jobs are handed back with the attempts they had (release_many).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from taskrunner.runner.outcomes import Execution

if TYPE_CHECKING:
    from taskrunner.queue import JobRow, Lease
    from taskrunner.runner.tasks import Task

LOCAL_WAIT = 0.02  # seconds a job claimed ahead waits here, on average, at most
MEAN_WEIGHT = 0.1  # of the newest attempt in the running mean of handler times


class Prefetch:
    """Jobs claimed ahead of free slots, and whether to claim ahead at all."""

    __slots__ = ("_backlog", "_mean", "concurrency", "extra", "held")

    def __init__(self, concurrency: int, extra: int) -> None:
        self.concurrency = concurrency
        self.extra = extra
        self.held: deque[Execution] = deque()
        self._mean: float | None = None  # running mean of handler times (seconds)
        self._backlog = False

    def room(self) -> int:
        """How many jobs the next claim may take beyond the free slots: as many as the
        slots get through in LOCAL_WAIT at the handlers' mean time, at most `extra`, and
        none for handlers that take LOCAL_WAIT or longer (the claim's round trip is
        small beside them)."""
        mean = self._mean
        if not self._backlog or mean is None or mean >= LOCAL_WAIT:
            return 0
        budget = LOCAL_WAIT * self.concurrency  # slot-seconds of waiting allowed
        allowed = self.extra if mean * self.extra <= budget else int(budget / mean)
        return max(0, allowed - len(self.held))

    def claimed(self, asked: int, got: int) -> None:
        """An ordinary claim asked for `asked` jobs and got `got`: a full one means a
        backlog; a short one, that the queue ran dry (no claiming ahead until it fills)."""
        self._backlog = asked > 0 and got >= asked

    def ran(self, seconds: float) -> None:
        """A handler ran this long."""
        mean = self._mean
        self._mean = seconds if mean is None else mean + MEAN_WEIGHT * (seconds - mean)

    def admit(
        self,
        claimed: list[JobRow],
        running: dict[int, Execution],
        tasks: dict[str, Task[..., Any]],
        stop_lost: Callable[[Execution], None],
        start: Callable[[Execution, asyncio.Task[None] | None], None],
    ) -> list[tuple[Lease, float]]:
        """Put the claimed jobs in `running` and `start` those that get a free slot; the
        rest wait here in claim order. Returns their leases with their lengths."""
        leases = []
        executing = len(running) - len(self.held)
        for job in claimed:
            task = tasks[job.task]
            previous = running.get(job.id)
            after = None
            if previous is not None and previous.handle is not None:
                # Our old lease expired and we claimed the job again: the new attempt
                # starts once the old one has really ended (a thread cannot be stopped).
                stop_lost(previous)
                after = previous.handle
            elif previous is not None:  # held, and its old lease lost meanwhile
                stop_lost(previous)
            execution = Execution(job, task, job.lease)
            running[job.id] = execution
            leases.append((execution.lease, task.lease))
            if after is None and executing >= self.concurrency:
                self.held.append(execution)
            else:
                executing += after is None
                start(execution, after)
        return leases

    def take(self) -> Execution | None:
        """The next held job to start, if any."""
        return self.held.popleft() if self.held else None

    def remove(self, execution: Execution) -> bool:
        """Take this job out (its cancel, a lost lease); whether it was held here."""
        try:
            self.held.remove(execution)
        except ValueError:
            return False
        return True

    def drop(self, execution: Execution, reason: str, running: dict[int, Execution]) -> bool:
        """End a held job before it started (cancel, lost lease): out of here and out of
        `running`; whether it was held here."""
        if not self.remove(execution):
            return False
        execution.stop_reason = execution.stop_reason or reason
        if running.get(execution.job.id) is execution:
            del running[execution.job.id]
        return True

    def take_back(self, running: dict[int, Execution]) -> list[Execution]:
        """At shutdown: every held job, never started, out of here and out of `running`,
        to hand back with the attempts they had."""
        held = list(self.held)
        self.held.clear()
        for execution in held:
            execution.stop_reason = "shutdown"
            if running.get(execution.job.id) is execution:
                del running[execution.job.id]
        return held
