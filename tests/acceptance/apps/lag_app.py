"""Handlers for the event-loop lag test: CPU-bound in a process, blocking in a thread.

The process-pool child imports `burn` from here by module and qualname, so it lives at
module level on a runner that is never opened; the test registers the same functions on
a runner of its own.
"""

from __future__ import annotations

import time

from taskrunner import TaskRunner

runner = TaskRunner(schema="lag_app_unused")


@runner.task(executor="process")
def burn(seconds: float) -> int:
    """Pure CPU for `seconds` (in a child process)."""
    deadline = time.monotonic() + seconds
    spins = 0
    while time.monotonic() < deadline:
        spins += 1
    return spins


@runner.task
def block(seconds: float) -> float:
    """Blocks its thread for `seconds`."""
    time.sleep(seconds)
    return seconds
