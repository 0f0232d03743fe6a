"""The commands about queues: `queues list` (a table, or `--json`), `queues pause|resume
NAME` and `queues set NAME [--concurrency N] [--rate N/SECONDS]`. Like the job commands,
each reads the DSN and schema from `--app MODULE:RUNNER`, or from `--dsn` and `--schema`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from taskrunner.cli.common import EXIT_ERROR, EXIT_OK, RunnerFrom, binder, run
from taskrunner.cli.jobs import format_table, print_json
from taskrunner.errors import InvalidArguments
from taskrunner.runner import QueueInfo, RateLimit, TaskRunner


def rate_argument(text: str) -> RateLimit:
    """`N/SECONDS`, like `100/1` (a hundred a second) or `5/60` (five a minute)."""
    count, slash, seconds = text.partition("/")
    try:
        if not slash:
            raise ValueError
        return RateLimit(int(count), per=timedelta(seconds=float(seconds)))
    except (ValueError, OverflowError, InvalidArguments) as exc:
        detail = f": {exc}" if isinstance(exc, InvalidArguments) else ""
        raise argparse.ArgumentTypeError(
            f"expected N/SECONDS with N and SECONDS positive, like 100/1, not {text!r}{detail}"
        ) from None


def _rate(limit: RateLimit | None) -> str:
    return f"{limit.n}/{limit.per.total_seconds():g}s" if limit is not None else "-"


def queue_as_dict(info: QueueInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "paused": info.paused,
        "concurrency": info.concurrency,
        "rate_limit": (
            {"n": info.rate_limit.n, "per": info.rate_limit.per.total_seconds()}
            if info.rate_limit is not None
            else None
        ),
        "counts": info.counts,
    }


def format_queues(infos: list[QueueInfo]) -> str:
    headers = ("NAME", "STATE", "CONCURRENCY", "RATE", "QUEUED", "RUNNING", "OTHER")
    rows = [
        (
            q.name,
            "paused" if q.paused else "active",
            str(q.concurrency) if q.concurrency is not None else "-",
            _rate(q.rate_limit),
            str(q.counts.get("queued", 0)),
            str(q.counts.get("running", 0)),
            str(sum(n for s, n in q.counts.items() if s not in ("queued", "running"))),
        )
        for q in infos
    ]
    return format_table(headers, rows)


def cmd_list(args: argparse.Namespace, runner: TaskRunner) -> int:
    async def listing() -> list[QueueInfo]:
        async with runner:
            return await runner.queues()

    infos = run(listing())
    if args.json:
        print_json([queue_as_dict(q) for q in infos])
    elif infos:
        print(format_queues(infos))
    else:
        print("no queues")
    return EXIT_OK


def cmd_action(args: argparse.Namespace, runner: TaskRunner) -> int:
    async def act() -> bool:
        async with runner:
            changed: bool = await getattr(runner, f"{args.action}_queue")(args.name)
            return changed

    if run(act()):
        print(f"queue {args.name}: {args.action} done")
        return EXIT_OK
    state = {"pause": "already paused", "resume": "not paused"}[args.action]
    print(f"queue {args.name}: cannot {args.action} ({state})", file=sys.stderr)
    return EXIT_ERROR


def cmd_set(args: argparse.Namespace, runner: TaskRunner) -> int:
    async def configure() -> None:
        async with runner:
            await runner.configure_queue(
                args.name, concurrency=args.concurrency, rate_limit=args.rate
            )

    run(configure())
    print(f"queue {args.name}: concurrency {args.concurrency or '-'}, rate {_rate(args.rate)}")
    return EXIT_OK


def add_queue_commands(
    commands: Any,  # argparse's private _SubParsersAction
    add_connection_options: Callable[[argparse.ArgumentParser], None],
    runner_from: RunnerFrom,
) -> None:
    """Add `queues list|pause|resume|set` to the CLI's subcommands."""

    handler = binder(runner_from)

    queues = commands.add_parser("queues", help="list queues, pause or resume one, set limits")
    verbs = queues.add_subparsers(dest="queue_command", required=True, metavar="ACTION")
    listing = verbs.add_parser("list", help="every queue with settings or jobs, by name")
    add_connection_options(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=handler(cmd_list))
    helps = {
        "pause": "no job of it starts on any worker until resumed",
        "resume": "its jobs start again",
    }
    for action, text in helps.items():
        verb = verbs.add_parser(action, help=text)
        verb.add_argument("name", metavar="NAME")
        add_connection_options(verb)
        verb.set_defaults(handler=handler(cmd_action), action=action)
    setting = verbs.add_parser(
        "set", help="set its limits (a limit left out is lifted; the pause is kept)"
    )
    setting.add_argument("name", metavar="NAME")
    setting.add_argument(
        "--concurrency", type=int, default=None, help="most of its jobs running at once"
    )
    setting.add_argument(
        "--rate",
        type=rate_argument,
        default=None,
        metavar="N/SECONDS",
        help="at most N of its jobs start per SECONDS",
    )
    add_connection_options(setting)
    setting.set_defaults(handler=handler(cmd_set))
