"""The command line: a thin front over TaskRunner. Argparse keeps it dependency-free.

Bad usage exits 2 with one line on stderr, never a traceback; a failure while a command
runs exits 1 (the rule is in cli/common.py and README's "Command line").
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any

from taskrunner import __version__
from taskrunner.cli.cleanup import add_cleanup_command
from taskrunner.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Parser,
    UsageError,
    exit_code_of,
)
from taskrunner.cli.dashboard import add_dashboard_command
from taskrunner.cli.jobs import add_job_commands
from taskrunner.cli.queues import add_queue_commands
from taskrunner.cli.schedules import add_schedule_commands
from taskrunner.cli.workflows import add_workflow_commands
from taskrunner.db import validate_schema
from taskrunner.errors import InvalidSchemaName, TaskRunnerError
from taskrunner.jobs import Job
from taskrunner.project import project_root
from taskrunner.runner import JsonFormatter, TaskRunner

DEFAULT_SCHEMA = "taskrunner"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")

__all__ = ["UsageError", "build_parser", "load_runner", "main"]


def load_runner(path: str) -> TaskRunner:
    """Import "package.module:attribute" (the current directory and the project's root
    are importable, so the same path works from any folder of the project)."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"expected MODULE:RUNNER (like myapp.tasks:runner), got {path!r}")
    for folder in (project_root(), os.getcwd()):  # the current directory ends up first
        if folder is not None and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"cannot import module {module_name!r}: {exc}") from None
    runner: Any = module
    for part in attribute.split("."):
        try:
            runner = getattr(runner, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(runner, TaskRunner):
        raise UsageError(f"{path} is a {type(runner).__name__}, not a TaskRunner")
    return runner


def _runner_from(args: argparse.Namespace) -> TaskRunner:
    """The app's runner (`--app`), or one for `--dsn` and `--schema`. The app's runner
    names its own database and schema, so giving either beside `--app` is refused rather
    than silently ignored."""
    if getattr(args, "app", None):
        given = [flag for flag, value in (("--dsn", args.dsn), ("--schema", args.schema)) if value]
        if given:
            raise UsageError(
                f"{' and '.join(given)} cannot be combined with --app: the app's runner "
                "names its database and schema (give --app, or --dsn/--schema without it)"
            )
        return load_runner(args.app)
    return TaskRunner(args.dsn, schema=args.schema or DEFAULT_SCHEMA, auto_migrate=False)


class _JobLogDefaults(logging.Filter):
    """Give every record the job attributes the format names, so none fails to render."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in ("job_id", "task", "request_id"):
            if not hasattr(record, name):
                setattr(record, name, "-")
        return True


def _setup_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
        logging.captureWarnings(True)  # so every line on stderr is JSON, warnings too
    else:
        handler.addFilter(_JobLogDefaults())
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s [request %(request_id)s] %(message)s"
            )
        )
    logging.basicConfig(level=level.upper(), handlers=[handler])


def _report_error(line: str, log_format: str) -> None:
    """The line that says why the command failed: plain on stderr, or a log record when
    stderr carries JSON (a log collector would choke on one plain line)."""
    if log_format == "json":
        logging.getLogger("taskrunner.cli").error(line)
    else:
        print(line, file=sys.stderr)


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# ---- commands ---------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    runner = load_runner(args.app)
    if not runner.tasks:
        raise UsageError(
            f"{args.app} has no tasks: register them with @runner.task in that module (or one "
            "it imports) before starting a worker"
        )
    _run(
        runner.run_worker(
            queues=args.queues,
            concurrency=args.concurrency,
            stop_when_idle=args.stop_when_idle,
            shutdown_timeout=args.shutdown_timeout,
            poll_interval=args.poll_interval,
            metrics_port=args.metrics_port,
        )
    )
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    runner = _runner_from(args)
    names = _run(runner.migrate(dry_run=args.dry_run))
    verb = "would apply" if args.dry_run else "applied"
    if names:
        print(f"{verb} in schema {runner.schema!r}: " + ", ".join(names))
    else:
        print(f"schema {runner.schema!r} is up to date")
    return EXIT_OK


def cmd_enqueue(args: argparse.Namespace) -> int:
    runner = load_runner(args.app)
    positional = _json_option("--args", args.args)
    keywords = _json_option("--kwargs", args.kwargs)
    if not isinstance(positional, list) or not isinstance(keywords, dict):
        raise UsageError("--args takes a JSON array and --kwargs a JSON object")

    async def enqueue() -> Job:
        async with runner:
            return await runner.enqueue(
                args.task,
                *positional,
                idempotency_key=args.idempotency_key,
                request_id=args.request_id,
                delay=args.delay,
                run_at=args.run_at,
                priority=args.priority,
                queue=args.queue,
                max_attempts=args.max_attempts,
                **keywords,
            )

    job = _run(enqueue())
    state = "existing job (deduplicated)" if job.deduplicated else "enqueued"
    print(f"{state} {job.id} task={job.task} queue={job.queue} request_id={job.request_id}")
    return EXIT_OK


# ---- parser -----------------------------------------------------------------------


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _RepeatedKey(key)
        found[key] = value
    return found


def _json_option(flag: str, text: str) -> Any:
    """JSON of `flag`; a key given twice in one object is refused, not silently dropped
    for the last one (json.loads keeps the last)."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _RepeatedKey as exc:
        raise UsageError(f"{flag} gives the key {exc.key!r} twice") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{flag} must be JSON: {exc}") from None


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"unknown log level {text!r}; use one of {', '.join(LOG_LEVELS)}"
        )
    return level


def _schema_name(text: str) -> str:
    try:
        return validate_schema(text)
    except InvalidSchemaName as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _aware_datetime(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date and time: {text!r}") from None
    if value.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset; add one, like {text}+00:00 or {text}Z"
        )
    return value


def _add_connection_options(parser: argparse.ArgumentParser, *, app_required: bool = False) -> None:
    if not app_required:
        parser.add_argument("--app", help="MODULE:RUNNER whose DSN and schema to use")
    parser.add_argument(
        "--dsn",
        default=None,
        help="PostgreSQL DSN (default: $TASKRUNNER_DSN, $DATABASE_URL, else embedded)",
    )
    parser.add_argument(
        "--schema", type=_schema_name, default=None, help=f"schema (default: {DEFAULT_SCHEMA})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="taskrunner",
        description="PostgreSQL-backed task runner: workers and job admin.",
        epilog="Exit codes: 0 done, 1 failed while running (database, job state), 2 bad usage.",
    )
    parser.add_argument(
        "--log-level",
        type=_log_level,
        default="INFO",
        help=f"logging level: {', '.join(LOG_LEVELS)} (default: INFO)",
    )
    parser.add_argument("--version", action="version", version=f"taskrunner {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", help="run a worker for MODULE:RUNNER")
    worker.add_argument("app", metavar="MODULE:RUNNER", help="e.g. myapp.tasks:runner")
    worker.add_argument("--concurrency", type=int, default=10, help="jobs at once (default: 10)")
    worker.add_argument("--queues", default=None, help="comma-separated queues (default: all)")
    worker.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        help="seconds running jobs get to finish on SIGTERM (default: 30)",
    )
    worker.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        help="seconds between polls when no notification arrives (default: 1)",
    )
    worker.add_argument(
        "--stop-when-idle", action="store_true", help="exit once nothing is running or runnable"
    )
    worker.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        help="text lines, or one JSON object per record for log collectors (default: text)",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics at http://0.0.0.0:PORT/metrics "
        "(needs taskrunner[prometheus])",
    )
    worker.set_defaults(handler=cmd_worker)

    migrate = commands.add_parser("migrate", help="apply pending migrations")
    _add_connection_options(migrate)
    migrate.add_argument("--dry-run", action="store_true", help="only list what would be applied")
    migrate.set_defaults(handler=cmd_migrate)

    enqueue = commands.add_parser("enqueue", help="enqueue a job of a registered task")
    enqueue.add_argument("app", metavar="MODULE:RUNNER")
    enqueue.add_argument("task", help="registered task name")
    enqueue.add_argument("--args", default="[]", help="JSON array of positional arguments")
    enqueue.add_argument("--kwargs", default="{}", help="JSON object of keyword arguments")
    enqueue.add_argument("--idempotency-key", default=None)
    enqueue.add_argument("--request-id", default=None)
    enqueue.add_argument("--delay", type=float, default=None, help="seconds from now")
    enqueue.add_argument(
        "--run-at",
        type=_aware_datetime,
        default=None,
        help="when to run, ISO 8601 with a UTC offset (like 2026-01-31T09:00:00+01:00)",
    )
    enqueue.add_argument("--priority", type=int, default=None)
    enqueue.add_argument("--max-attempts", type=int, default=None)
    enqueue.add_argument("--queue", default=None)
    enqueue.set_defaults(handler=cmd_enqueue)

    add_job_commands(commands, _add_connection_options, _runner_from)
    add_schedule_commands(commands, _add_connection_options, _runner_from)
    add_cleanup_command(commands, _add_connection_options, _runner_from)
    add_queue_commands(commands, _add_connection_options, _runner_from)
    add_dashboard_command(commands, load_runner)
    add_workflow_commands(commands, _add_connection_options, _runner_from)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_format = getattr(args, "log_format", "text")
    _setup_logging(args.log_level, log_format)
    try:
        code: int = args.handler(args)
    except UsageError as exc:
        _report_error(f"taskrunner: error: {exc}", log_format)
        return EXIT_USAGE
    except TaskRunnerError as exc:
        code = exit_code_of(exc)
        _report_error(f"taskrunner: {'error: ' if code == EXIT_USAGE else ''}{exc}", log_format)
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
