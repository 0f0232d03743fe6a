"""The commands about schedules: `schedules list` (a table, or `--json`) and
`schedules pause|resume|remove|run NAME`. Like the job commands, each reads the DSN and
schema from `--app MODULE:RUNNER`, or from `--dsn` and `--schema`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from taskrunner.cli.common import EXIT_ERROR, EXIT_OK, RunnerFrom, binder, run
from taskrunner.cli.jobs import format_table, print_json
from taskrunner.errors import ScheduleNotFound
from taskrunner.runner import Schedule, TaskRunner

ACTIONS = ("pause", "resume", "remove", "run")


def _when(value: datetime | None) -> str:
    return value.isoformat(sep=" ", timespec="seconds") if value is not None else "-"


def _every(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"every {seconds / size:g}{unit}"
    return f"every {seconds:g}s"


def schedule_as_dict(schedule: Schedule) -> dict[str, Any]:
    found = {name: getattr(schedule, name) for name in schedule.__struct_fields__}
    found["every"] = schedule.every.total_seconds() if schedule.every is not None else None
    return found


def format_schedules(schedules: list[Schedule]) -> str:
    headers = ("NAME", "TASK", "WHEN", "TIMEZONE", "MISSED", "STATE", "NEXT RUN", "LAST RUN")
    rows = [
        (
            s.name,
            s.task,
            s.cron if s.cron is not None else _every(s.every) if s.every is not None else "-",
            s.timezone,
            s.missed,
            "paused" if s.paused else "active",
            _when(s.next_run_at),
            _when(s.last_run_at),
        )
        for s in schedules
    ]
    return format_table(headers, rows)


def cmd_list(args: argparse.Namespace, runner: TaskRunner) -> int:
    async def listing() -> list[Schedule]:
        async with runner:
            return await runner.list_schedules()

    schedules = run(listing())
    if args.json:
        print_json([schedule_as_dict(s) for s in schedules])
    elif schedules:
        print(format_schedules(schedules))
    else:
        print("no schedules")
    return EXIT_OK


def cmd_action(args: argparse.Namespace, runner: TaskRunner) -> int:
    async def act() -> Any:
        async with runner:
            if args.action == "run":
                return await runner.run_schedule_now(args.name)
            return await getattr(runner, f"{args.action}_schedule")(args.name)

    try:
        outcome = run(act())
    except ScheduleNotFound as exc:
        print(f"taskrunner: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.action == "run":
        print(f"schedule {args.name}: enqueued job {outcome.id} task={outcome.task}")
        return EXIT_OK
    if outcome:
        print(f"schedule {args.name}: {args.action} done")
        return EXIT_OK
    state = {"pause": "already paused", "resume": "not paused", "remove": "not there"}
    print(
        f"schedule {args.name}: cannot {args.action} (no such schedule, or {state[args.action]})",
        file=sys.stderr,
    )
    return EXIT_ERROR


def add_schedule_commands(
    commands: Any,  # argparse's private _SubParsersAction
    add_connection_options: Callable[[argparse.ArgumentParser], None],
    runner_from: RunnerFrom,
) -> None:
    """Add `schedules list|pause|resume|remove|run` to the CLI's subcommands."""

    handler = binder(runner_from)

    schedules = commands.add_parser(
        "schedules", help="list, pause, resume, remove or run schedules"
    )
    verbs = schedules.add_subparsers(dest="schedule_command", required=True, metavar="ACTION")
    listing = verbs.add_parser("list", help="every schedule, by name")
    add_connection_options(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=handler(cmd_list))
    helps = {
        "pause": "stop enqueueing its ticks",
        "resume": "tick again, from the next tick after now",
        "remove": "delete it (its jobs stay)",
        "run": "enqueue one extra job now, outside its ticks",
    }
    for action in ACTIONS:
        verb = verbs.add_parser(action, help=helps[action])
        verb.add_argument("name", metavar="NAME")
        add_connection_options(verb)
        verb.set_defaults(handler=handler(cmd_action), action=action)
