"""The bare queue's reads and bulk changes for the dashboard (sql/dashboard.sql).

Every read here is served by an index, so it costs milliseconds however many finished
jobs the table holds; bulk changes work in batches, each one short transaction.
"""

from __future__ import annotations

import time
from typing import Any, TypeAlias

import msgspec

from taskrunner.queue.errors import translate_errors
from taskrunner.queue.notify import cancel_channel, jobs_channel
from taskrunner.queue.records import JobRow, job_row
from taskrunner.queue.statements import statements_for
from taskrunner.queue.workflows import WorkflowRow

# A pool or one connection (asyncpg ships no types, so this is documentation).
Executor: TypeAlias = Any


class OverviewRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the overview statement; `kind` says which part it belongs to."""

    kind: str  # "live", "recent", "total" or "settings"
    queue: str | None
    status: str | None
    count: int
    oldest_queued_age: float | None


class DashboardQueries:
    """The overview, finding jobs by idempotency key, and bulk retry and cancel."""

    def __init__(self, db: Executor, schema: str) -> None:
        self.db = db
        self.sql = statements_for(schema)
        self.jobs_channel = jobs_channel(schema)
        self.cancel_channel = cancel_channel(schema)

    @translate_errors
    async def overview(self, *, window: float, total_cap: int) -> list[OverviewRow]:
        rows = await self.db.fetch(self.sql["overview"], window, total_cap)
        return [
            OverviewRow(
                kind=r["kind"],
                queue=r["queue"],
                status=r["status"],
                count=r["count"],
                oldest_queued_age=r["oldest_queued_age"],
            )
            for r in rows
        ]

    @translate_errors
    async def find_by_key(self, key: str, *, limit: int) -> list[JobRow]:
        return [job_row(r) for r in await self.db.fetch(self.sql["find_jobs_by_key"], key, limit)]

    @translate_errors
    async def list_workflows(
        self, *, status: str | None, before_id: int | None, limit: int
    ) -> list[WorkflowRow]:
        rows = await self.db.fetch(self.sql["list_workflows"], status, before_id, limit)
        return [
            WorkflowRow(
                id=r["id"],
                status=r["status"],
                job_ids=list(r["job_ids"] or []),
                created_at=r["created_at"],
                finished_at=r["finished_at"],
                request_id=r["request_id"],
            )
            for r in rows
        ]

    @translate_errors
    async def change_matching(
        self,
        action: str,
        *,
        status: str | None,
        queue: str | None,
        task: str | None,
        request_id: str | None,
        batch: int,
        limit: int,
        max_seconds: float,
    ) -> int:
        """Retry (`action` "retry") or cancel ("cancel") the jobs the filters select, in
        batches of `batch`, until none is left, `limit` changed, or `max_seconds` passed.
        Returns how many changed."""
        statement, channel = {
            "retry": (self.sql["retry_matching"], self.jobs_channel),
            "cancel": (self.sql["cancel_matching"], self.cancel_channel),
        }[action]
        deadline = time.monotonic() + max_seconds
        total = 0
        while total < limit:
            size = min(batch, limit - total)
            row = await self.db.fetchrow(statement, status, queue, task, request_id, size, channel)
            total += row["changed"]
            if row["changed"] < size or time.monotonic() >= deadline:
                break
        return total
