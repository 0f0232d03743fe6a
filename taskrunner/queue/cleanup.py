"""Cleanup, archive and retention of jobs: SQL only (sql/jobs_cleanup.sql).

Every verb that changes many rows works in batches, each one short statement of its own
transaction that skips rows locked by anything else (a claim, an ack, a renewal), and
walks a cursor forward so that no batch reads again what the one before it passed. A
cleanup of millions of rows therefore never holds long locks nor waits on, or holds up,
the workers. Which actions a status allows is the runner's decision (runner/cleanup.py);
this module only carries them out.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeAlias

from taskrunner.queue.errors import translate_errors
from taskrunner.queue.notify import jobs_channel
from taskrunner.queue.statements import statements_for

# A pool or one connection (asyncpg ships no types, so this is documentation).
Executor: TypeAlias = Any
# Called after each batch with (status, batches done, rows acted on so far).
Progress: TypeAlias = Callable[[str, int, int], None]

FINISHED = ("succeeded", "failed", "cancelled")
WAITING = ("queued", "paused")
ARCHIVED = "archived"
DEFAULT_BATCH = 1_000

# The one-batch statement of each (status, action) the runner may allow: finished jobs
# are walked by finished_at, waiting and running ones by id, the archive by finished_at.
BATCHES: dict[tuple[str, str], str] = {
    **{(final, "remove"): "remove_finished" for final in FINISHED},
    **{(final, "archive"): "archive_finished" for final in FINISHED},
    **{(final, "rerun"): "rerun_finished" for final in FINISHED},
    **{(waiting, "remove"): "remove_waiting" for waiting in WAITING},
    ("paused", "rerun"): "rerun_unfinished",
    ("running", "rerun"): "rerun_unfinished",
    (ARCHIVED, "remove"): "remove_archived",
}

# Retention per final status in seconds: None follows the key lifetime, math.inf keeps
# the job until a cleanup acts on it.
RetentionSeconds: TypeAlias = tuple[float | None, float | None, float | None]


class CleanupStore:
    """Cleanup and retention over one database (a pool or a connection) and schema."""

    def __init__(self, db: Executor, schema: str) -> None:
        self.db = db
        self.sql = statements_for(schema)
        self.jobs_channel = jobs_channel(schema)

    @translate_errors
    async def clock(self) -> datetime:
        """The database's now: ages are measured from it, never from this host's clock."""
        now: datetime = await self.db.fetchval(self.sql["cleanup_clock"])
        return now

    @translate_errors
    async def count(self, status: str, cutoff: datetime, action: str) -> int:
        """How many jobs of `status` (or "archived") `act` would touch with `cutoff`."""
        if status == ARCHIVED:
            found: int = await self.db.fetchval(self.sql["count_archived_for_cleanup"], cutoff)
            return found
        expired_only = status == "running"  # rerun is the one action running allows
        counted: int = await self.db.fetchval(
            self.sql["count_for_cleanup"], status, cutoff, expired_only
        )
        return counted

    @translate_errors
    async def act(
        self,
        status: str,
        action: str,
        cutoff: datetime,
        *,
        batch: int = DEFAULT_BATCH,
        progress: Progress | None = None,
        duty_cycle: float = 1.0,
    ) -> int:
        """Apply `action` ("remove", "archive" or "rerun") to the jobs of `status` (or
        "archived") aged at or before `cutoff`; returns how many were acted on.

        Ends when a batch comes back short: the cursor only moves forward and the cutoff
        is fixed, so the loop is bounded by the rows that were there when it started.
        With `duty_cycle` below 1 it rests after each batch, so that its statements take
        that fraction of the time: the database's CPU, disks and WAL flushes it leaves to
        the workers.
        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if not 0 < duty_cycle <= 1:
            raise ValueError("duty_cycle must be above 0 and at most 1")
        if (status, action) not in BATCHES:
            raise ValueError(f"no cleanup action {action!r} for {status} jobs")
        cursor: Any = None if status in FINISHED or status == ARCHIVED else 0
        total = batches = 0
        while True:
            started = time.monotonic()
            count: int
            count, cursor = await self._batch(status, action, cutoff, batch, cursor)
            total += count
            batches += 1
            if progress is not None:
                progress(status, batches, total)
            if count < batch or cursor is None:
                return total
            if duty_cycle < 1:
                busy = time.monotonic() - started
                await asyncio.sleep(busy * (1 - duty_cycle) / duty_cycle)

    async def _batch(
        self, status: str, action: str, cutoff: datetime, n: int, cursor: Any
    ) -> tuple[int, Any]:
        """One batch of the statement for (status, action); its count and new cursor."""
        statement = BATCHES[(status, action)]
        args: list[Any] = [cutoff, n, cursor] if status == ARCHIVED else [status, cutoff, n, cursor]
        if action == "rerun":  # re-queued jobs wake idle workers of their queues
            args.append(self.jobs_channel)
        row = await self.db.fetchrow(self.sql[statement], *args)
        return row["count"], row["cursor"]

    # ---- retention -----------------------------------------------------------------

    @translate_errors
    async def prune(
        self, *, batch: int = DEFAULT_BATCH, max_seconds: float = 30.0
    ) -> tuple[int, bool]:
        """Delete finished jobs past the schema's retention, status by status, in batches
        until none is left or `max_seconds` have passed; then, the same way, finished
        workflows past it whose steps are all gone. Returns how many jobs were deleted
        and whether it got through all of them (False: more are due, prune again soon)."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        deadline = time.monotonic() + max_seconds
        total = 0
        jobs, workflows = self.sql["prune_by_retention"], self.sql["prune_workflows"]
        for statement in (jobs, workflows):
            for status in FINISHED:
                while True:
                    count: int = await self.db.fetchval(statement, status, batch)
                    if statement is jobs:
                        total += count
                    if count < batch:
                        break
                    if time.monotonic() >= deadline:
                        return total, False
        return total, True

    @translate_errors
    async def remove_workflows(
        self, status: str, cutoff: datetime, *, batch: int = DEFAULT_BATCH, duty_cycle: float = 1.0
    ) -> int:
        """Delete workflows that ended `status` at or before `cutoff` and whose steps are
        all gone (removed, pruned or archived), in batches as `act` does; how many."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        cursor: Any = None
        total = 0
        while True:
            started = time.monotonic()
            row = await self.db.fetchrow(
                self.sql["remove_workflows"], status, cutoff, batch, cursor
            )
            count: int = row["count"]
            total += count
            cursor = row["cursor"]
            if count < batch or cursor is None:
                return total
            if duty_cycle < 1:
                busy = time.monotonic() - started
                await asyncio.sleep(busy * (1 - duty_cycle) / duty_cycle)

    @translate_errors
    async def retention(self) -> RetentionSeconds:
        row = await self.db.fetchrow(self.sql["get_retention"])
        return row[0], row[1], row[2]

    @translate_errors
    async def set_retention(self, seconds: RetentionSeconds) -> RetentionSeconds | None:
        """Store the schema's retention; returns the previous one if it changed."""
        for value in seconds:
            if value is not None and (math.isnan(value) or value < 0):
                raise ValueError(f"a retention must be None or not negative, not {value!r}")
        row = await self.db.fetchrow(self.sql["set_retention"], *seconds)
        return (row[0], row[1], row[2]) if row is not None else None
