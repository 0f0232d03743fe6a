"""`taskrunner dashboard MODULE:RUNNER [--host H] [--port P] [--read-only] [--password ...]`:
serves the web dashboard (taskrunner.web, the `web` extra) with uvicorn.

It listens on 127.0.0.1 unless told otherwise, and refuses a host other than a loopback
one without a password (`--password` or $TASKRUNNER_DASHBOARD_PASSWORD): exit code 2,
before anything is imported or served. Without the extra it exits 1, naming the command
that installs it.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Callable
from typing import Any

from taskrunner.cli.common import EXIT_OK, UsageError
from taskrunner.runner import TaskRunner

PASSWORD_VARIABLE = "TASKRUNNER_DASHBOARD_PASSWORD"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def dashboard_password(args: argparse.Namespace) -> str | None:
    """The password of `--password`, else of the environment; refuses none off loopback."""
    password = args.password if args.password is not None else os.environ.get(PASSWORD_VARIABLE)
    if password == "":
        raise UsageError(f"the dashboard password is empty (--password or ${PASSWORD_VARIABLE})")
    if password is None and not is_loopback(args.host):
        raise UsageError(
            f"refusing to serve the dashboard on {args.host}, which is not a loopback address, "
            f"without a password: give --password or set ${PASSWORD_VARIABLE} "
            f"(or listen on {DEFAULT_HOST})"
        )
    return password


def cmd_dashboard(args: argparse.Namespace, load_runner: Callable[[str], TaskRunner]) -> int:
    password = dashboard_password(args)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, not {args.port}")
    from taskrunner.web import INSTALL_HINT, DashboardUnavailable, create_app

    try:
        import uvicorn
    except ImportError as exc:
        raise DashboardUnavailable(
            f"the dashboard needs its extra: {INSTALL_HINT} (missing: {exc.name or exc})"
        ) from exc
    app = create_app(load_runner(args.app), read_only=args.read_only, password=password)
    mode = "read-only" if args.read_only else "read-write"
    print(f"taskrunner dashboard ({mode}) on http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="on")
    return EXIT_OK


def add_dashboard_command(commands: Any, load_runner: Callable[[str], TaskRunner]) -> None:
    """Add `dashboard` to the CLI's subcommands (`commands`: argparse's subparsers)."""
    dashboard = commands.add_parser("dashboard", help="serve the web dashboard of MODULE:RUNNER")
    dashboard.add_argument("app", metavar="MODULE:RUNNER", help="e.g. myapp.tasks:runner")
    dashboard.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST})"
    )
    dashboard.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})"
    )
    dashboard.add_argument(
        "--read-only", action="store_true", help="serve the pages only, no action at all"
    )
    dashboard.add_argument(
        "--password",
        default=None,
        help=f"HTTP Basic password every request needs (default: ${PASSWORD_VARIABLE}); "
        "required off loopback",
    )
    dashboard.set_defaults(handler=lambda args: cmd_dashboard(args, load_runner))
