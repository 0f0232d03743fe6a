"""The web dashboard: `create_app(runner)` is an ASGI app over a TaskRunner.

A thin front: it imports only what the runner exports. Its libraries (Starlette, Jinja2,
an ASGI server) come with the `web` extra; without them, `create_app` raises
DashboardUnavailable naming the command that installs them, and importing this package
costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskrunner.errors import TaskRunnerError

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from taskrunner import TaskRunner

INSTALL_HINT = "pip install 'taskrunner[web]'"

__all__ = ["INSTALL_HINT", "DashboardUnavailable", "create_app"]


class DashboardUnavailable(TaskRunnerError, ImportError):
    """The dashboard's libraries are not installed."""


def create_app(
    runner: TaskRunner, read_only: bool = False, password: str | None = None
) -> Starlette:
    """The dashboard as an ASGI app (mountable in another one). `read_only` serves no
    action at all; with `password`, every request needs it (HTTP Basic, any user name).
    The runner is opened on first use when it is not open yet, and closed at the app's
    shutdown if the app opened it."""
    try:
        from taskrunner.web.app import build_app
    except ImportError as exc:
        raise DashboardUnavailable(
            f"the dashboard needs its extra: {INSTALL_HINT} (missing: {exc.name or exc})"
        ) from exc
    return build_app(runner, read_only=read_only, password=password)
