"""A worker's maintenance: rescue jobs of dead workers, prune finished jobs by the
schema's retention, and warn about queued jobs of tasks no worker here knows.

Rescue and pruning are separate supervised loops: a long prune never delays a rescue,
and a failure of either is logged and the loop restarts with backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from taskrunner.queue import JobQueue
from taskrunner.queue.cleanup import CleanupStore
from taskrunner.runner.supervise import start_supervised
from taskrunner.runner.unknown_tasks import UnknownTaskWatch


class Maintenance:
    def __init__(
        self,
        queue: JobQueue,
        unknown_tasks: UnknownTaskWatch,
        *,
        rescue_interval: float,
        prune_interval: float,
        on_rescued: Callable[[], None],
        count_rescued: Callable[[int], None] | None = None,
    ) -> None:
        self._queue = queue
        self._unknown_tasks = unknown_tasks
        self._rescue_interval = rescue_interval
        self._prune_interval = prune_interval
        self._on_rescued = on_rescued
        self._count_rescued = count_rescued  # for metrics (runner/metrics.py)
        self._next_prune: float | None = None  # kept across restarts of the loop
        self._retention = CleanupStore(queue.db, queue.schema)

    def start(self) -> list[asyncio.Task[None]]:
        return [
            start_supervised("rescue", self.rescue_loop),
            start_supervised("pruning", self.prune_loop),
        ]

    async def rescue_loop(self) -> None:
        """Every `rescue_interval`: jobs whose lease ran out go back to the queue."""
        while True:
            await asyncio.sleep(self._rescue_interval)
            rescued = await self._queue.rescue_expired()
            if rescued and self._count_rescued is not None:
                self._count_rescued(len(rescued))
            if any(status == "queued" for _, status in rescued):
                self._on_rescued()
            await self._unknown_tasks.check_if_due()

    async def prune_loop(self) -> None:
        """First after `rescue_interval`, then every `prune_interval`: finished jobs past
        the schema's retention for their status (runner/cleanup.py) are deleted.

        A prune that runs out of its time budget with jobs still due starts again at once
        instead of after the interval, so pruning keeps pace with any finish rate; each
        batch is one short transaction, so that costs the claims nothing but a share of
        the database's time.
        """
        loop = asyncio.get_running_loop()
        if self._next_prune is None:
            self._next_prune = loop.time() + self._rescue_interval
        while True:
            await asyncio.sleep(max(0.0, self._next_prune - loop.time()))
            _, done = await self._retention.prune()  # by the schema's retention
            self._next_prune = loop.time() + (self._prune_interval if done else 0.0)
