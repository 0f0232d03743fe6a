"""The dashboard's pages (GET): overview, jobs, a job, queues, schedules, workflows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from taskrunner import JobStatus, TaskRunner

PAGE_SIZE = 50
STATUSES = [s.value for s in JobStatus]
WORKFLOW_STATUSES = ["running", "succeeded", "failed", "cancelled"]
# Actions a job's status allows, as the runner's verbs decide them.
ACTIONS_BY_STATUS = {
    "queued": ("pause", "cancel"),
    "paused": ("resume", "cancel"),
    "running": ("cancel",),
    "waiting": ("cancel",),
    "failed": ("retry",),
    "cancelled": ("retry",),
    "succeeded": (),
}


def job_filters(request: Request) -> dict[str, str | None]:
    """status, queue and task of the query string (empty means any)."""
    params = request.query_params
    status = params.get("status") or None
    if status is not None and status not in STATUSES:
        raise HTTPException(400, f"unknown status {status!r}: one of {', '.join(STATUSES)}")
    return {
        "status": status,
        "queue": (params.get("queue") or "").strip() or None,
        "task": (params.get("task") or "").strip() or None,
    }


def _cursor(request: Request) -> int | None:
    raw = request.query_params.get("before")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise HTTPException(400, f"before must be a job id, not {raw!r}")
    return int(raw)


class PageViews:
    """The GET views of Dashboard."""

    if TYPE_CHECKING:
        runner: TaskRunner
        read_only: bool

        async def ready(self) -> TaskRunner: ...

        def render(
            self, request: Request, name: str, context: dict[str, Any], status_code: int = 200
        ) -> Response: ...

    async def overview(self, request: Request) -> Response:
        runner = await self.ready()
        return self.render(request, "overview.html", {"overview": await runner.overview()})

    async def overview_live(self, request: Request) -> Response:
        """The counts alone, which the overview's page polls (htmx) to stay current."""
        runner = await self.ready()
        return self.render(request, "_live.html", {"overview": await runner.overview()})

    async def jobs(self, request: Request) -> Response:
        runner = await self.ready()
        filters = job_filters(request)
        search = (request.query_params.get("q") or "").strip()
        before = _cursor(request)
        if search:
            found = await runner.find_jobs(search, limit=PAGE_SIZE)
            if len(found) == 1 and search.isdigit() and found[0].id == int(search):
                return RedirectResponse(request.url_for("job", job_id=found[0].id).path, 303)
            jobs, more = found, False
        else:
            # Keyset pages: ids below the last one shown, newest first (the primary key
            # serves it, however many jobs there are).
            page = await runner.list_jobs(
                status=filters["status"],
                queue=filters["queue"],
                task=filters["task"],
                before_id=before,
                limit=PAGE_SIZE + 1,
            )
            jobs, more = page[:PAGE_SIZE], len(page) > PAGE_SIZE
        return self.render(
            request,
            "jobs.html",
            {
                "jobs": jobs,
                "filters": filters,
                "search": search,
                "before": before,
                "next_before": jobs[-1].id if more and jobs else None,
                "statuses": STATUSES,
                "task_names": sorted(runner.tasks),
                "any_filter": any(filters.values()),
            },
        )

    async def job(self, request: Request) -> Response:
        runner = await self.ready()
        job = await runner.get_job(request.path_params["job_id"])
        if job is None:
            raise HTTPException(404, f"no job {request.path_params['job_id']}")
        return self.render(
            request,
            "job.html",
            {
                "job": job,
                "actions": ACTIONS_BY_STATUS.get(job.status.value, ()),
                "workflow_id": getattr(job, "workflow_id", None),
            },
        )

    async def queues(self, request: Request) -> Response:
        runner = await self.ready()
        return self.render(request, "queues.html", {"queues": await runner.queues()})

    async def schedules(self, request: Request) -> Response:
        runner = await self.ready()
        return self.render(request, "schedules.html", {"schedules": await runner.list_schedules()})

    async def workflows(self, request: Request) -> Response:
        runner = await self.ready()
        status = request.query_params.get("status") or None
        if status is not None and status not in WORKFLOW_STATUSES:
            raise HTTPException(400, f"unknown status {status!r}")
        before = _cursor(request)
        page = await runner.list_workflows(status=status, before_id=before, limit=PAGE_SIZE + 1)
        shown = page[:PAGE_SIZE]
        return self.render(
            request,
            "workflows.html",
            {
                "workflows": shown,
                "status": status,
                "statuses": WORKFLOW_STATUSES,
                "before": before,
                "next_before": shown[-1].id if len(page) > PAGE_SIZE else None,
            },
        )

    async def workflow(self, request: Request) -> Response:
        runner = await self.ready()
        workflow_id = request.path_params["workflow_id"]
        tree = await runner.workflow_tree(workflow_id)
        if tree is None:
            raise HTTPException(404, f"no workflow {workflow_id}")
        return self.render(request, "workflow.html", {"tree": tree})
