"""The dashboard's actions (POST, each with a CSRF token): a job's retry, cancel, pause
and resume; a queue's pause and resume; running a schedule now; retrying or cancelling
every job a filter selects, or a workflow. A request without a valid token changes nothing (403).

Each ends in a redirect (303) back to the page it came from, with a message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from taskrunner import JobStatus, ScheduleNotFound, TaskRunner, WorkflowNotFound

if TYPE_CHECKING:
    from taskrunner.web.security import Csrf

JOB_ACTIONS = ("retry", "cancel", "pause", "resume")
BULK_ACTIONS = ("retry", "cancel")
QUEUE_ACTIONS = ("pause", "resume")
WORKFLOW_ACTIONS = ("retry", "cancel")
STATUSES = {s.value for s in JobStatus}


def _back(request: Request, default: str, message: str) -> Response:
    """A redirect to the form's `next` (a path of this app only) or `default`."""
    target = default
    form_next = request.state.form.get("next")
    root = request.scope.get("root_path", "")
    if isinstance(form_next, str) and form_next.startswith(root + "/") and "//" not in form_next:
        target = form_next
    separator = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{separator}{urlencode({'message': message})}", 303)


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value.strip() or None if isinstance(value, str) else None


class ActionViews:
    """The POST views of Dashboard."""

    if TYPE_CHECKING:
        runner: TaskRunner
        csrf: Csrf

        async def ready(self) -> TaskRunner: ...

    async def _checked_form(self, request: Request) -> FormData:
        """The form, once its CSRF token is valid; 403 before anything changes otherwise."""
        form = await request.form()
        if not self.csrf.is_valid(request, form.get("csrf_token")):
            raise HTTPException(403, "missing or invalid CSRF token: reload the page and retry")
        request.state.form = form
        return form

    async def job_action(self, request: Request) -> Response:
        action, job_id = request.path_params["action"], request.path_params["job_id"]
        if action not in JOB_ACTIONS:
            raise HTTPException(404, f"no job action {action!r}")
        await self._checked_form(request)
        runner = await self.ready()
        changed: bool = await getattr(runner, action)(job_id)
        message = (
            f"job {job_id}: {action} done"
            if changed
            else f"job {job_id}: cannot {action} (its status does not allow it)"
        )
        return _back(request, request.url_for("job", job_id=job_id).path, message)

    async def bulk_action(self, request: Request) -> Response:
        action = request.path_params["action"]
        if action not in BULK_ACTIONS:
            raise HTTPException(404, f"no bulk action {action!r}")
        form = await self._checked_form(request)
        filters: dict[str, Any] = {
            name: _field(form, name) for name in ("status", "queue", "task", "request_id")
        }
        if filters["status"] is not None and filters["status"] not in STATUSES:
            raise HTTPException(400, f"unknown status {filters['status']!r}")
        if not any(filters.values()):
            raise HTTPException(400, f"a bulk {action} needs a filter (status, queue or task)")
        runner = await self.ready()
        verb = runner.retry_jobs if action == "retry" else runner.cancel_jobs
        count = await verb(**filters)
        return _back(request, request.url_for("jobs").path, f"{action}: {count} jobs")

    async def queue_action(self, request: Request) -> Response:
        action = request.path_params["action"]
        if action not in QUEUE_ACTIONS:
            raise HTTPException(404, f"no queue action {action!r}")
        form = await self._checked_form(request)
        name = _field(form, "name")
        if name is None:
            raise HTTPException(400, "which queue? (the form has no name)")
        runner = await self.ready()
        verb = runner.pause_queue if action == "pause" else runner.resume_queue
        changed = await verb(name)
        state = "already paused" if action == "pause" else "not paused"
        message = f"queue {name}: {action} done" if changed else f"queue {name}: {state}"
        return _back(request, request.url_for("queues").path, message)

    async def workflow_action(self, request: Request) -> Response:
        action, workflow_id = request.path_params["action"], request.path_params["workflow_id"]
        if action not in WORKFLOW_ACTIONS:
            raise HTTPException(404, f"no workflow action {action!r}")
        await self._checked_form(request)
        runner = await self.ready()
        verb = runner.retry_workflow if action == "retry" else runner.cancel_workflow
        try:
            count = await verb(workflow_id)
        except WorkflowNotFound:
            raise HTTPException(404, f"no workflow {workflow_id}") from None
        done = "steps queued again" if action == "retry" else "steps cancelled"
        return _back(
            request,
            request.url_for("workflow", workflow_id=workflow_id).path,
            f"workflow {workflow_id}: {count} {done}",
        )

    async def schedule_run(self, request: Request) -> Response:
        form = await self._checked_form(request)
        name = _field(form, "name")
        if name is None:
            raise HTTPException(400, "which schedule? (the form has no name)")
        runner = await self.ready()
        try:
            job = await runner.run_schedule_now(name)
        except ScheduleNotFound:
            raise HTTPException(404, f"no schedule {name!r}") from None
        return _back(
            request, request.url_for("schedules").path, f"schedule {name}: job {job.id} enqueued"
        )
