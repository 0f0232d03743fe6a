"""The dashboard's Starlette app: routes, templates, opening the runner, the guards.

Pages are GET (web/pages.py); actions are POST with a CSRF token (web/actions.py) and
are not routed at all when the app is read-only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from taskrunner import TaskRunner, TaskRunnerError
from taskrunner.web.actions import ActionViews
from taskrunner.web.format import FILTERS
from taskrunner.web.pages import PageViews
from taskrunner.web.security import SECURITY_HEADERS, BasicAuth, Csrf

HERE = Path(__file__).parent


@jinja2.pass_context
def _path_for(context: dict[str, Any], name: str, /, **params: Any) -> str:
    """A route's path, not a full URL: links stay right behind proxies that rewrite the
    host, and under the path the app is mounted at (the root path is in it)."""
    request: Request = context["request"]
    return request.url_for(name, **params).path


class Dashboard(PageViews, ActionViews):
    """The state every view shares: the runner, the mode, the templates, the tokens."""

    def __init__(self, runner: TaskRunner, *, read_only: bool) -> None:
        self.runner = runner
        self.read_only = read_only
        self.csrf = Csrf()
        environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,  # every value shown is escaped, whatever a job holds
            undefined=jinja2.StrictUndefined,
        )
        environment.filters.update(FILTERS)
        environment.globals["url_for"] = _path_for  # before Jinja2Templates sets its own
        self.templates = Jinja2Templates(env=environment)
        self._opening = asyncio.Lock()
        self.opened_here = False

    async def ready(self) -> TaskRunner:
        """The runner, opened on first use when nobody opened it (a mounted app's
        lifespan may never run)."""
        if not self.runner.is_open:
            async with self._opening:
                if not self.runner.is_open:
                    await self.runner.open()
                    self.opened_here = True
        return self.runner

    def render(
        self, request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> Response:
        context = {
            "read_only": self.read_only,
            "csrf_token": "" if self.read_only else self.csrf.token_for(request),
            "message": request.query_params.get("message", ""),
            **context,
        }
        response = self.templates.TemplateResponse(request, name, context, status_code=status_code)
        for header, value in SECURITY_HEADERS.items():
            response.headers[header] = value
        if not self.read_only:
            self.csrf.set_cookie(request, response)
        return response

    async def error_page(self, request: Request, exc: Exception) -> Response:
        headers: dict[str, str] = {}
        if isinstance(exc, HTTPException):
            status, detail, headers = exc.status_code, exc.detail, dict(exc.headers or {})
        else:  # refused input (an unknown status, a name too long ...)
            status, detail = 400, str(exc)
        response = self.render(request, "error.html", {"status": status, "detail": detail}, status)
        response.headers.update(headers)  # Allow: of a 405
        return response

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/", self.overview, name="overview"),
            Route("/live", self.overview_live, name="overview_live"),
            Route("/jobs", self.jobs, name="jobs"),
            Route("/jobs/{job_id:int}", self.job, name="job"),
            Route("/queues", self.queues, name="queues"),
            Route("/schedules", self.schedules, name="schedules"),
            Route("/workflows", self.workflows, name="workflows"),
            Route("/workflows/{workflow_id:int}", self.workflow, name="workflow"),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
        if not self.read_only:
            routes += [
                Route("/jobs/bulk/{action}", self.bulk_action, methods=["POST"], name="bulk"),
                Route(
                    "/jobs/{job_id:int}/{action}",
                    self.job_action,
                    methods=["POST"],
                    name="job_action",
                ),
                Route("/queues/{action}", self.queue_action, methods=["POST"], name="queue_action"),
                Route("/schedules/run", self.schedule_run, methods=["POST"], name="schedule_run"),
                Route(
                    "/workflows/{workflow_id:int}/{action}",
                    self.workflow_action,
                    methods=["POST"],
                    name="workflow_action",
                ),
            ]
        return routes


def build_app(runner: TaskRunner, *, read_only: bool, password: str | None) -> Starlette:
    if not isinstance(runner, TaskRunner):
        raise TypeError(f"create_app needs a TaskRunner, not {type(runner).__name__}")
    if password is not None and (not isinstance(password, str) or not password):
        raise ValueError("password must be a non-empty string, or None for no password")
    dashboard = Dashboard(runner, read_only=read_only)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if dashboard.opened_here and runner.is_open:
                await runner.close()

    middleware = [Middleware(BasicAuth, password=password)] if password else []
    return Starlette(
        routes=dashboard.routes(),
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: dashboard.error_page,
            TaskRunnerError: dashboard.error_page,
        },
    )
