"""The one interface the harness drives, implemented once per system.

Harness side (producer, in the harness process): install, open_producer, enqueue_one,
enqueue_batch, bulk_fill, close_producer, counts.
Worker side (in a subprocess of its own, see benchmarks/compare/worker.py): run_worker.

Two tasks exist in every system, with the same arguments:

* ``noop(seq: int, t: float)``: an async no-op that calls ``record.hit(seq, t)``.
* ``burn(seq: int, t: float, iters: int)``: ``record.burn`` (CPU-bound, ~50 ms) on the
  system's process executor, or, for a system that has none, in a
  ``concurrent.futures.ProcessPoolExecutor`` awaited from an async handler.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, Literal

Task = Literal["noop", "burn"]
Args = tuple[Any, ...]


class Adapter(abc.ABC):
    #: short name used on the command line, in database names and in the report
    name: str = ""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency

    # -- facts ------------------------------------------------------------------------

    @abc.abstractmethod
    def version(self) -> str: ...

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """Every setting that can change the figures, printed with the results."""

    # -- harness side -----------------------------------------------------------------

    @abc.abstractmethod
    async def install(self, dsn: str) -> None:
        """Create the system's schema in the (fresh, empty) database."""

    @abc.abstractmethod
    async def open_producer(self, dsn: str) -> None: ...

    @abc.abstractmethod
    async def close_producer(self) -> None: ...

    @abc.abstractmethod
    async def enqueue_one(self, task: Task, args: Args) -> None:
        """One job, one call of the system's single-job enqueue API."""

    @abc.abstractmethod
    async def enqueue_batch(self, task: Task, args: Sequence[Args]) -> None:
        """Many jobs, one call of the system's batch enqueue API."""

    async def bulk_fill(self, task: Task, first_seq: int, n: int, chunk: int) -> None:
        """Untimed pre-fill of n jobs ``(seq, 0.0)``; default: the batch API in chunks."""
        seq = first_seq
        end = first_seq + n
        while seq < end:
            upto = min(end, seq + chunk)
            await self.enqueue_batch(task, [(s, 0.0) for s in range(seq, upto)])
            seq = upto

    @abc.abstractmethod
    async def counts(self, dsn: str) -> dict[str, int]:
        """``{"pending": jobs not finished yet, "finished": jobs finished successfully}``."""

    # -- worker side ------------------------------------------------------------------

    @abc.abstractmethod
    async def run_worker(self, dsn: str, *, drain: bool) -> None:
        """Run the system's worker with ``self.concurrency`` until it stops.

        drain=True: the system's own "stop when the queue is empty" mode.
        drain=False: run until SIGTERM (the recorder sends it), then stop gracefully.
        Must call ``record.RECORDER.ready()`` right before entering the worker loop.
        """
