"""`taskrunner cleanup --succeeded remove --older-than 7d ...`: `runner.cleanup()` from the
command line, with a dry run and progress output.

Each status is an option whose choices are the actions that status allows, so a
combination the runner would refuse is a usage error (exit code 2) before anything
connects. Like the job commands, it reads the DSN and schema from `--app MODULE:RUNNER`,
or from `--dsn` and `--schema`.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from taskrunner.cli.common import EXIT_OK, EXIT_USAGE, RunnerFrom, binder, run
from taskrunner.runner import TaskRunner
from taskrunner.runner.cleanup import ALLOWED, DEFAULT_DUTY_CYCLE, STATUSES

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
PROGRESS_EVERY = 10  # batches between two progress lines


def duration(text: str) -> float:
    """Seconds from "90", "30s", "15m", "12h", "7d" or "2w"."""
    found = _DURATION.match(text)
    if found is None:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (use a number with s, m, h, d or w, like 30s or 7d)"
        )
    return float(found.group(1)) * UNITS[found.group(2) or "s"]


class Progress:
    """Prints, every `every` batches, how far a status's cleanup got (to stderr, so the
    counts on stdout stay easy to read by a script)."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.started = time.monotonic()

    def __call__(self, status: str, batches: int, rows: int) -> None:
        if batches % self.every == 0:
            elapsed = time.monotonic() - self.started
            print(
                f"{status}: {batches} batches done, {rows} rows so far ({elapsed:.1f}s)",
                file=sys.stderr,
                flush=True,
            )


def summary(counts: Mapping[str, int], actions: Mapping[str, str], dry_run: bool) -> list[str]:
    done = {"remove": "removed", "archive": "archived", "rerun": "reran"}
    lines = []
    for status in STATUSES:
        action = actions[status]
        if action == "keep":
            continue
        verb = f"would {action}" if dry_run else done[action]
        lines.append(f"{status}: {verb} {counts[status]} jobs")
    return lines


def cmd_cleanup(args: argparse.Namespace, runner: TaskRunner) -> int:
    actions = {status: getattr(args, status) for status in STATUSES}
    if all(action == "keep" for action in actions.values()):
        print(
            "taskrunner: error: nothing to do; give an action for at least one status, "
            "like --succeeded remove",
            file=sys.stderr,
        )
        return EXIT_USAGE

    async def clean() -> Mapping[str, int]:
        async with runner:
            return await runner.cleanup(
                **actions,  # argparse's choices checked them
                older_than=args.older_than,
                dry_run=args.dry_run,
                batch_size=args.batch_size,
                progress=Progress(args.progress_every),
                duty_cycle=args.duty_cycle,
            )

    counts = run(clean())
    for line in summary(counts, actions, args.dry_run):
        print(line)
    if args.dry_run:
        print("dry run: nothing was changed")
    return EXIT_OK


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, not {text!r}")
    return value


def add_cleanup_command(
    commands: Any,  # argparse's private _SubParsersAction
    add_connection_options: Callable[[argparse.ArgumentParser], None],
    runner_from: RunnerFrom,
) -> None:
    """Add `cleanup` to the CLI's subcommands."""
    parser = commands.add_parser(
        "cleanup",
        help="remove, archive or rerun jobs by status and age",
        description=(
            "Act once on the jobs of each status given: remove them, archive them, or run "
            "them again. Age is the time since a job finished (since it was created for "
            "queued and paused jobs, since it started for running ones); a running job is "
            "only rerun once its lease has run out."
        ),
    )
    add_connection_options(parser)
    for status in STATUSES:
        allowed = ALLOWED[status]
        parser.add_argument(
            f"--{status}",
            choices=allowed,
            default="keep",
            help=f"what to do with {status} jobs: {', '.join(allowed)} (default: keep)",
        )
    parser.add_argument(
        "--older-than",
        type=duration,
        default=None,
        metavar="DURATION",
        help="only jobs at least this old, like 30s, 15m, 12h, 7d (default: any age)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print how many jobs it would act on; change nothing"
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=1000,
        help="rows per batch, each its own short transaction (default: 1000)",
    )
    parser.add_argument(
        "--duty-cycle",
        type=_fraction,
        default=DEFAULT_DUTY_CYCLE,
        metavar="FRACTION",
        help="rest between batches so they take this fraction of the time, leaving the "
        f"database to running workers (default: {DEFAULT_DUTY_CYCLE:g}; 1: no rest)",
    )
    parser.add_argument(
        "--progress-every",
        type=_positive_int,
        default=PROGRESS_EVERY,
        metavar="BATCHES",
        help=f"print progress every this many batches (default: {PROGRESS_EVERY})",
    )
    parser.set_defaults(handler=binder(runner_from)(cmd_cleanup))
