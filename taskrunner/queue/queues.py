"""Queue controls in the bare queue: pause, concurrency and rate limits (sql/queues.sql).

The settings live in the schema's `queues` table (migration 0008) and the database
enforces them: the ordinary claim (claim_batch) leaves paused and limited queues out,
and a limited queue is claimed only through `claim_limited`, which counts its running
jobs and recent starts under the queue's own lock. Callers only choose where to look.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import msgspec

from taskrunner.queue.errors import translate_errors
from taskrunner.queue.notify import jobs_channel
from taskrunner.queue.records import JobRow, Lease, positional_job_row
from taskrunner.queue.statements import statements_for

# A pool or one connection (asyncpg ships no types, so this is documentation).
Executor: TypeAlias = Any


class QueueRow(msgspec.Struct, frozen=True, kw_only=True):
    """A queue's settings and its jobs per status, as stored."""

    name: str
    paused: bool
    concurrency: int | None
    rate_limit: int | None
    rate_per: float | None  # seconds
    counts: dict[str, int]


class QueueControls:
    """The settings of one schema's queues, and the claim of its limited ones."""

    def __init__(self, db: Executor, schema: str) -> None:
        self.db = db
        self.sql = statements_for(schema)
        self.jobs_channel = jobs_channel(schema)

    @translate_errors
    async def configure(
        self,
        name: str,
        *,
        concurrency: int | None,
        rate_limit: int | None,
        rate_per: float | None,
    ) -> None:
        """Set (or with None, lift) a queue's limits; its pause is kept."""
        await self.db.fetchrow(
            self.sql["configure_queue"],
            name,
            concurrency,
            rate_limit,
            rate_per,
            self.jobs_channel,
        )

    @translate_errors
    async def pause(self, name: str) -> bool:
        """Whether the queue was running (it is paused now)."""
        return await self.db.fetchrow(self.sql["pause_queue"], name) is not None

    @translate_errors
    async def resume(self, name: str) -> bool:
        """Whether the queue was paused (it runs now; idle workers are woken)."""
        return await self.db.fetchrow(self.sql["resume_queue"], name, self.jobs_channel) is not None

    @translate_errors
    async def list_all(self) -> list[QueueRow]:
        rows = await self.db.fetch(self.sql["list_queues"])
        return [
            QueueRow(
                name=r["name"],
                paused=r["paused"],
                concurrency=r["concurrency"],
                rate_limit=r["rate_limit"],
                rate_per=r["rate_per"],
                counts=dict(zip(r["statuses"], r["counts"], strict=True)),
            )
            for r in rows
        ]

    @translate_errors
    async def limited(self) -> list[str]:
        """Names of the queues that must be claimed through `claim_limited`."""
        return [r["name"] for r in await self.db.fetch(self.sql["limited_queues"])]

    @translate_errors
    async def claim_limited(
        self,
        queue: str,
        tasks: Sequence[str],
        *,
        limit: int,
        owner: str,
        lease: Mapping[str, float],
        ended: Sequence[Lease] = (),
    ) -> list[JobRow]:
        """Claim up to `limit` jobs of one limited queue, within its free slots and its
        rate, in claim order. Jobs with no attempts left come back failed; the caller
        keeps the running ones. `ended`: leases of the caller's in this queue whose
        handlers have ended, outcome not written yet; their slots are free."""
        if limit <= 0 or not tasks:
            return []
        task_list = list(tasks)
        rows = await self.db.fetch(
            self.sql["claim_limited"],
            queue,
            task_list,
            limit,
            [float(lease.get(t, 30.0)) for t in task_list],
            owner,
            [e.job_id for e in ended],
            [e.lease_id for e in ended],
        )
        return [positional_job_row(r) for r in rows]
