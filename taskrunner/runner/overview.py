"""What a dashboard reads and does in bulk: `overview()`, `find_jobs()`,
`list_workflows()`, and `retry_jobs()` / `cancel_jobs()` over every job a filter selects.

The reads are built for big tables: they use indexes only (queue/dashboard.py), so the
overview gives exact counts of live jobs and of the jobs finished in a recent window,
and counts of all finished jobs up to a cap.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from taskrunner.errors import InvalidArguments
from taskrunner.jobs import Job, JobStatus
from taskrunner.limits import (
    MAX_DELAY_SECONDS,
    MAX_TIMEOUT_SECONDS,
    check_int,
    check_job_id,
    check_seconds,
)
from taskrunner.queue.dashboard import DashboardQueries
from taskrunner.runner.options import MAX_LIST_LIMIT, list_filters
from taskrunner.runner.tasks import Task
from taskrunner.runner.workflows import FINAL_WORKFLOW_STATUSES, Workflow

if TYPE_CHECKING:
    from taskrunner.queue import JobQueue

LIVE_STATUSES = ("queued", "running", "paused")
FINAL_STATUSES = ("succeeded", "failed", "cancelled")
DEFAULT_TOTALS_CAP = 10_000


class QueueOverview(msgspec.Struct, frozen=True, kw_only=True):
    """One queue: its live jobs by status, the wait of its oldest due job (seconds), and
    the jobs that finished in the window, by final status."""

    name: str
    paused: bool
    live: dict[str, int]
    oldest_queued_age: float | None
    finished: dict[str, int]
    throughput_per_minute: float  # jobs that ended (succeeded or failed) over the window


class Overview(msgspec.Struct, frozen=True, kw_only=True):
    """Every queue with jobs or settings, by name; `window` is the seconds that
    `QueueOverview.finished` covers. `finished_totals` counts all finished jobs kept, by
    status, up to `totals_cap` (a count equal to the cap means "at least")."""

    queues: list[QueueOverview]
    window: float
    finished_totals: dict[str, int]
    totals_cap: int


def _overview_from(rows: list[Any], window: float, cap: int) -> Overview:
    live: dict[str, dict[str, int]] = {}
    finished: dict[str, dict[str, int]] = {}
    ages: dict[str, float | None] = {}
    paused: dict[str, bool] = {}
    totals = dict.fromkeys(FINAL_STATUSES, 0)
    for row in rows:
        if row.kind == "total":
            totals[row.status] = row.count
        elif row.kind == "settings":
            paused[row.queue] = bool(row.count)
        elif row.kind == "live":
            live.setdefault(row.queue, dict.fromkeys(LIVE_STATUSES, 0))[row.status] = row.count
            if row.status == "queued":
                ages[row.queue] = row.oldest_queued_age
        else:
            finished.setdefault(row.queue, dict.fromkeys(FINAL_STATUSES, 0))[row.status] = row.count
    names = sorted({*live, *finished, *paused, "default"})
    queues = []
    for name in names:
        ended = finished.get(name, dict.fromkeys(FINAL_STATUSES, 0))
        queues.append(
            QueueOverview(
                name=name,
                paused=paused.get(name, False),
                live=live.get(name, dict.fromkeys(LIVE_STATUSES, 0)),
                oldest_queued_age=ages.get(name),
                finished=ended,
                throughput_per_minute=(ended["succeeded"] + ended["failed"]) / (window / 60.0),
            )
        )
    return Overview(queues=queues, window=window, finished_totals=totals, totals_cap=cap)


class OverviewVerbs:
    """The dashboard's verbs of TaskRunner (a part of it, kept apart)."""

    if TYPE_CHECKING:
        schema: str

        @property
        def job_queue(self) -> JobQueue: ...

        async def get_job(self, job_id: int) -> Job | None: ...

        async def list_jobs(
            self,
            *,
            status: JobStatus | str | None = None,
            queue: str | None = None,
            task: Task[..., Any] | str | None = None,
            request_id: str | None = None,
            before_id: int | None = None,
            limit: int = 50,
            archived: bool = False,
        ) -> list[Job]: ...

    @property
    def _dashboard_queries(self) -> DashboardQueries:
        return DashboardQueries(self.job_queue.db, self.schema)

    async def overview(
        self, *, window: timedelta | float = 3600.0, totals_cap: int = DEFAULT_TOTALS_CAP
    ) -> Overview:
        """Per queue: live jobs by status, the oldest due job's wait, and the jobs that
        finished within `window` (a timedelta or seconds; an hour unless given)."""
        seconds = check_seconds(window, "window", maximum=MAX_DELAY_SECONDS, positive=True)
        cap = check_int(totals_cap, "totals_cap", minimum=1)
        rows = await self._dashboard_queries.overview(window=seconds, total_cap=cap)
        return _overview_from(rows, seconds, cap)

    async def find_jobs(self, text: str, *, limit: int = 50) -> list[Job]:
        """Jobs that `text` names: the job with that id (digits), and the jobs with that
        idempotency key or request id; newest first."""
        text = text.strip()
        limit = check_int(limit, "limit", minimum=1, maximum=MAX_LIST_LIMIT)
        found: dict[int, Job] = {}
        if text.isdigit() and len(text) < 19:
            job = await self.get_job(int(text))
            if job is not None:
                found[job.id] = job
        if text:
            filters = list_filters(None, None, None, text[:255], None, limit)
            for job in await self.list_jobs(request_id=filters["request_id"], limit=limit):
                found[job.id] = job
            for row in await self._dashboard_queries.find_by_key(text, limit=limit):
                found[row.id] = Job.from_row(row)
        return sorted(found.values(), key=lambda j: j.id, reverse=True)[:limit]

    async def list_workflows(
        self, *, status: str | None = None, before_id: int | None = None, limit: int = 50
    ) -> list[Workflow]:
        """Newest workflows first, optionally of one status ("running", "succeeded",
        "failed" or "cancelled"). Pages: `before_id=` the last id of the page before."""
        statuses = ("running", *sorted(FINAL_WORKFLOW_STATUSES))
        if status is not None and status not in statuses:
            raise InvalidArguments(
                None, f"status must be one of {', '.join(statuses)}, not {status!r}", field="status"
            )
        rows = await self._dashboard_queries.list_workflows(
            status=status,
            before_id=check_job_id(before_id, "before_id") if before_id is not None else None,
            limit=check_int(limit, "limit", minimum=0, maximum=MAX_LIST_LIMIT),
        )
        return [Workflow.from_row(r) for r in rows]

    async def retry_jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        queue: str | None = None,
        task: Task[..., Any] | str | None = None,
        request_id: str | None = None,
        batch: int = 500,
        limit: int = 100_000,
        max_seconds: float = 30.0,
    ) -> int:
        """Retry every failed or cancelled job the filters select (None: any), as `retry`
        does each; workflow steps are left to `retry_workflow`. Returns how many."""
        return await self._change_matching(
            "retry", status, queue, task, request_id, batch, limit, max_seconds
        )

    async def cancel_jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        queue: str | None = None,
        task: Task[..., Any] | str | None = None,
        request_id: str | None = None,
        batch: int = 500,
        limit: int = 100_000,
        max_seconds: float = 30.0,
    ) -> int:
        """Cancel every queued, paused, waiting or running job the filters select (None:
        any), as `cancel` does each. Returns how many."""
        return await self._change_matching(
            "cancel", status, queue, task, request_id, batch, limit, max_seconds
        )

    async def _change_matching(
        self,
        action: str,
        status: JobStatus | str | None = None,
        queue: str | None = None,
        task: Task[..., Any] | str | None = None,
        request_id: str | None = None,
        batch: int = 500,
        limit: int = 100_000,
        max_seconds: float = 30.0,
    ) -> int:
        """Works in batches of `batch` jobs, each one short transaction that skips jobs
        locked elsewhere, until none is left, `limit` changed or `max_seconds` passed."""
        checked = list_filters(status, queue, task, request_id, None, MAX_LIST_LIMIT)
        return await self._dashboard_queries.change_matching(
            action,
            status=checked["status"],
            queue=checked["queue"],
            task=checked["task"],
            request_id=checked["request_id"],
            batch=check_int(batch, "batch", minimum=1, maximum=MAX_LIST_LIMIT),
            limit=check_int(limit, "limit", minimum=1),
            max_seconds=check_seconds(
                max_seconds, "max_seconds", maximum=MAX_TIMEOUT_SECONDS, positive=True
            ),
        )
