"""A worker's warning about queued jobs of tasks it does not know.

A worker claims only its registered tasks, so a job whose task name no worker knows
waits for ever. The usual cause is a name mismatch (a script and the worker importing
the module under different names, or a renamed task); the warning names them, once per
task, at start and then every minute or so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from taskrunner.errors import DatabaseError
from taskrunner.queue import JobQueue

log = logging.getLogger("taskrunner")

CHECK_INTERVAL = 60.0
SCAN = 1000  # jobs looked at, in claim order


class UnknownTaskWatch:
    """Looks for due queued jobs of tasks outside `known`; warns once for each task."""

    def __init__(
        self,
        queue: JobQueue,
        known: Sequence[str],
        queues: Sequence[str] | None,
        *,
        interval: float = CHECK_INTERVAL,
    ) -> None:
        self.queue = queue
        self.known = sorted(known)
        self.queues = list(queues) if queues is not None else None
        self.interval = interval
        self.warned: set[str] = set()
        self._next_check = 0.0

    async def check(self) -> dict[str, int]:
        """Query now; warn about tasks not warned about before. Returns the new ones."""
        self._next_check = time.monotonic() + self.interval
        try:
            found = await self.queue.unknown_queued_tasks(self.known, self.queues, scan=SCAN)
        except DatabaseError as exc:
            log.debug("could not look for jobs of unknown tasks: %s", exc)
            return {}
        new = {task: count for task, count in found.items() if task not in self.warned}
        if new:
            self.warned.update(new)
            names = ", ".join(
                f"{task!r} ({count} job{'s' * (count != 1)})" for task, count in new.items()
            )
            log.warning(
                "queued jobs wait for tasks this worker does not know: %s. It runs only %s. "
                "If no other worker runs them, check the task names: a default name is "
                "'<module>.<function>' with the module's import name",
                names,
                ", ".join(repr(name) for name in self.known),
            )
        return new

    async def check_if_due(self) -> None:
        if time.monotonic() >= self._next_check:
            await self.check()
