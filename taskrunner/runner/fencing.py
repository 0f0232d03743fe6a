"""Self-fencing: stop a handler before its lease can run out when no renewal got through.

The lease keeper (runner/leases.py) knows for every lease until when it surely holds: a
renewal or claim that succeeded was sent at a known moment, and the database counts the
lease from later. A timer on the worker's event loop compares that with the clock every
FENCE_TICK seconds and hands the leases whose fence time has come to the worker, which
stops their handlers: an async handler is cancelled, a process handler's child killed;
a thread cannot be interrupted, so its outcome is never written and it keeps its slot
until it returns. Whatever happens to the database or the network meanwhile (a partition,
a half-open connection, a renewal stuck behind a lock), the job never runs on two workers
at once.

A timer, not a task, on purpose: a worker resumed after a freeze (SIGSTOP, a paused VM)
runs every timer that came due in one pass of its event loop, this one among them,
before any task those timers woke takes its next step. A handler frozen in an `await`
is cancelled there and does no more work; an outcome waiting to be written is held back
by the ack writer, which checks the same clock (runner/acks.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from taskrunner.queue import Lease
from taskrunner.runner.leases import LeaseKeeper

FENCE_TICK = 0.1  # seconds between checks; far below the shortest fence margin


class Fence:
    """Calls `on_due(lease)` for every held lease whose fence time has come."""

    def __init__(self, keeper: LeaseKeeper, on_due: Callable[[Lease], None]) -> None:
        self._keeper = keeper
        self._on_due = on_due
        self._timer: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = loop.call_later(FENCE_TICK, self._tick, loop)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        try:  # an error is the loop's to log; the next tick is planned whatever happens
            for lease in self._keeper.due(time.monotonic()):
                self._on_due(lease)
        finally:
            if self._timer is not None:
                self._timer = loop.call_later(FENCE_TICK, self._tick, loop)
