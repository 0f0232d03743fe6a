"""The commands about jobs: `jobs` (a listing), `job show|cancel|retry|pause|resume ID` and
`stats`. Each reads the DSN and schema from `--app MODULE:RUNNER`, or from `--dsn` and
`--schema`; `--json` prints machine-readable output instead of the tables."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from taskrunner.cli.common import EXIT_ERROR, EXIT_OK, RunnerFrom, binder, run
from taskrunner.jobs import Job, JobStatus, Stats
from taskrunner.runner import TaskRunner

JOB_ACTIONS = ("show", "cancel", "retry", "pause", "resume")


def _plain(value: Any) -> Any:
    """A value as JSON: datetimes in ISO 8601, enums by value, the rest as it is."""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def job_as_dict(job: Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in job.__struct_fields__}


def print_json(value: Any) -> None:
    print(json.dumps(value, default=_plain, indent=2))


def _when(value: datetime | None) -> str:
    return value.isoformat(sep=" ", timespec="seconds") if value is not None else "-"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns left-aligned to their widest cell (numbers right-aligned), two spaces apart."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    numeric = [bool(rows) and all(r[i].isdigit() for r in rows) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def format_jobs(jobs: Sequence[Job]) -> str:
    headers = ("ID", "STATUS", "QUEUE", "TASK", "ATTEMPTS", "RUN AT", "REQUEST ID")
    rows = [
        (
            str(job.id),
            job.status.value,
            job.queue,
            job.task,
            f"{job.attempts}/{job.max_attempts}",
            _when(job.run_at),
            job.request_id or "-",
        )
        for job in jobs
    ]
    return format_table(headers, rows)


def format_job(job: Job) -> str:
    """One job for people: a field a line, the error with its own line breaks."""
    fields = [
        ("task", job.task),
        ("status", job.status.value),
        ("queue", job.queue),
        ("priority", str(job.priority)),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("args", json.dumps(job.args, default=_plain)),
        ("kwargs", json.dumps(job.kwargs, default=_plain)),
        ("run at", _when(job.run_at)),
        ("created at", _when(job.created_at)),
        ("started at", _when(job.started_at)),
        ("finished at", _when(job.finished_at)),
        ("request id", job.request_id or "-"),
        ("idempotency key", job.idempotency_key or "-"),
        ("result", json.dumps(job.result, default=_plain)),
    ]
    width = max(len(name) for name, _ in fields) + 1
    lines = [f"job {job.id}"] + [f"  {name + ':':<{width}} {value}" for name, value in fields]
    if job.last_error:
        lines.append("  last error:")
        lines += [f"    {line}" if line else "" for line in job.last_error.splitlines()]
    return "\n".join(lines)


def format_stats(stats: Stats) -> str:
    statuses = list(stats.totals)
    headers = ["QUEUE", *(s.upper() for s in statuses), "OLDEST DUE"]
    rows = []
    for name, queue in stats.queues.items():
        age = f"{queue.oldest_queued_age:.1f}s" if queue.oldest_queued_age is not None else "-"
        rows.append([name, *(str(queue.counts[s]) for s in statuses), age])
    return format_table(headers, rows)


def stats_as_dict(stats: Stats) -> dict[str, Any]:
    return {
        "queues": {name: q.counts for name, q in stats.queues.items()},
        "totals": stats.totals,
        "oldest_queued_age": stats.oldest_queued_age,
    }


# ---- commands ---------------------------------------------------------------------


def cmd_jobs(args: argparse.Namespace, runner: TaskRunner) -> int:
    async def listing() -> list[Job]:
        async with runner:
            return await runner.list_jobs(
                status=args.status,
                queue=args.queue,
                task=args.task,
                request_id=args.request_id,
                before_id=args.before_id,
                limit=args.limit,
                archived=args.archived,
            )

    jobs = run(listing())
    if args.json:
        print_json([job_as_dict(job) for job in jobs])
    elif jobs:
        print(format_jobs(jobs))
        if len(jobs) == args.limit:
            print(f"(newest {args.limit}; next page: --before-id {jobs[-1].id})")
    else:
        print("no jobs")
    return EXIT_OK


def cmd_job(args: argparse.Namespace, runner: TaskRunner) -> int:
    async def act() -> Any:
        async with runner:
            if args.action == "show":
                return await runner.get_job(args.job_id)
            return await getattr(runner, args.action)(args.job_id)

    outcome = run(act())
    if args.action == "show":
        if outcome is None:
            print(f"no job with id {args.job_id}", file=sys.stderr)
            return EXIT_ERROR
        if args.json:
            print_json(job_as_dict(outcome))
        else:
            print(format_job(outcome))
        return EXIT_OK
    if args.json:
        print_json({"job_id": args.job_id, "action": args.action, "done": bool(outcome)})
    if outcome:
        if not args.json:
            print(f"job {args.job_id}: {args.action} done")
        return EXIT_OK
    print(
        f"job {args.job_id}: cannot {args.action} (no such job, or its status does not allow it)",
        file=sys.stderr,
    )
    return EXIT_ERROR


def cmd_stats(args: argparse.Namespace, runner: TaskRunner) -> int:
    async def stats() -> Stats:
        async with runner:
            return await runner.stats()

    result = run(stats())
    if args.json:
        print_json(stats_as_dict(result))
    else:
        print(format_stats(result))
    return EXIT_OK


# ---- parser -----------------------------------------------------------------------


def add_job_commands(
    commands: Any,  # argparse's private _SubParsersAction
    add_connection_options: Callable[[argparse.ArgumentParser], None],
    runner_from: RunnerFrom,
) -> None:
    """Add `job`, `jobs` and `stats` to the CLI's subcommands."""

    handler = binder(runner_from)

    def json_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON")

    job = commands.add_parser("job", help="show, cancel, retry, pause or resume one job")
    job.add_argument("action", choices=JOB_ACTIONS)
    job.add_argument("job_id", type=int, metavar="ID")
    add_connection_options(job)
    json_option(job)
    job.set_defaults(handler=handler(cmd_job))

    jobs = commands.add_parser("jobs", help="list jobs, newest first")
    jobs.add_argument("--status", default=None, choices=[status.value for status in JobStatus])
    jobs.add_argument("--queue", default=None)
    jobs.add_argument("--task", default=None, help="task name")
    jobs.add_argument("--request-id", default=None)
    jobs.add_argument(
        "--before-id", type=int, default=None, help="only ids below this (the next page)"
    )
    jobs.add_argument("--limit", type=int, default=20, help="at most this many (default: 20)")
    jobs.add_argument(
        "--archived", action="store_true", help="list the archive (jobs a cleanup archived)"
    )
    add_connection_options(jobs)
    json_option(jobs)
    jobs.set_defaults(handler=handler(cmd_jobs))

    stats = commands.add_parser("stats", help="job counts per queue and status")
    add_connection_options(stats)
    json_option(stats)
    stats.set_defaults(handler=handler(cmd_stats))
