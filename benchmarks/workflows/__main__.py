"""Workflows against Celery 5 on Redis, and a plain taskrunner drain beside them.

    python -m benchmarks.workflows [--reps 3] [--quick] [--systems celery,taskrunner]
        [--workloads chord,chains,drain] [--celery-pool threads] [--dsn DSN]

For each repetition, each workload runs for each system in turn (celery, taskrunner,
celery, taskrunner ...), each run with a fresh worker process (and for taskrunner a
fresh database; for Celery an emptied redis-server, one private server for the whole
command). Prints medians [min-max], the ratios, and every setting; writes
benchmarks/results/workflows.json (workflows-quick.json with --quick). Exit status 1 if
any run failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

import uvloop

from benchmarks.compare.config import default_dsn
from benchmarks.workflows.config import CELERY_POOLS, RESULTS, SYSTEMS, WORKLOADS, Sizes

#: The figure each workload is judged by, and whether more is better.
PRIMARY = {
    "chord": ("seconds", False),
    "chains": ("steps_per_s", True),
    "drain": ("jobs_per_s", True),
}
RUN_TIMEOUT = 600.0  # a result not there by then fails the run


def _csv(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(choices)}")
        return items

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.workflows", description=__doc__)
    p.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    p.add_argument("--quick", action="store_true", help="smaller sizes (a smoke test)")
    p.add_argument("--systems", type=_csv(SYSTEMS), default=list(SYSTEMS))
    p.add_argument("--workloads", type=_csv(WORKLOADS), default=list(WORKLOADS))
    p.add_argument(
        "--celery-pool",
        choices=CELERY_POOLS,
        default="threads",
        help="Celery's worker pool (default threads: one process with `concurrency` "
        "slots, as taskrunner's worker)",
    )
    p.add_argument("--chord-size", type=int, default=None, help="header tasks of the chord")
    p.add_argument("--chains", type=int, default=None, help="number of chains")
    p.add_argument("--chain-length", type=int, default=None, help="steps per chain (>= 2)")
    p.add_argument("--drain-jobs", type=int, default=None, help="jobs of the plain drain")
    p.add_argument("--concurrency", type=int, default=None, help="both workers' (default 16)")
    p.add_argument(
        "--dsn",
        default=default_dsn(),
        help="PostgreSQL server (default $BENCH_DSN, else %(default)s)",
    )
    p.add_argument("--output", type=Path, default=None, help="JSON path")
    p.add_argument("--keep-files", action="store_true", help="keep the worker logs")
    args = p.parse_args(argv)
    if args.reps < 1:
        p.error("--reps must be at least 1")
    sizes = Sizes.quick() if args.quick else Sizes()
    overrides = {
        "chord_size": args.chord_size,
        "chains": args.chains,
        "chain_length": args.chain_length,
        "drain_jobs": args.drain_jobs,
        "concurrency": args.concurrency,
    }
    args.sizes = dataclasses.replace(sizes, **{k: v for k, v in overrides.items() if v})
    if args.sizes.chain_length < 2:
        p.error("--chain-length must be at least 2")
    if args.output is None:
        args.output = RESULTS / ("workflows-quick.json" if args.quick else "workflows.json")
    return args


def _version(dist: str) -> str:
    try:
        return pkg_version(dist)
    except PackageNotFoundError:
        return "not installed"


class Bench:
    """One command's state: the Redis server (when Celery runs), the work folder."""

    def __init__(self, args: argparse.Namespace, stack: ExitStack) -> None:
        self.args = args
        self.sizes: Sizes = args.sizes
        self.workdir = Path(tempfile.mkdtemp(prefix="bench_workflows_"))
        self.server: Any = None
        self.celery: Any = None
        if "celery" in args.systems and set(args.workloads) - {"drain"}:
            from benchmarks.workflows.celery_side import celery_environment
            from benchmarks.workflows.redis_server import redis_server

            self.server = stack.enter_context(redis_server())
            self.celery = stack.enter_context(celery_environment(self.server))

    def run(self, workload: str, system: str, rep: int) -> dict[str, Any]:
        tag = f"r{rep}_{workload}"
        if system == "celery":
            return self._celery(workload, tag)
        return uvloop.run(self._taskrunner(workload, tag, rep))

    def _celery(self, workload: str, tag: str) -> dict[str, Any]:
        from benchmarks.workflows import celery_side

        s = self.sizes
        self.server.flush()
        with celery_side.celery_worker(self.server, s, self.args.celery_pool, self.workdir, tag):
            celery_side.warm_up(self.celery)
            if workload == "chord":
                return celery_side.chord_run(self.celery, s.chord_size, RUN_TIMEOUT)
            return celery_side.chains_run(self.celery, s.chains, s.chain_length, RUN_TIMEOUT)

    async def _taskrunner(self, workload: str, tag: str, rep: int) -> dict[str, Any]:
        s = self.sizes
        if workload == "drain":
            from benchmarks.compare import workloads
            from benchmarks.compare.config import Sizes as CompareSizes

            env = workloads.Env(
                self.args.dsn,
                dataclasses.replace(
                    CompareSizes(), drain_jobs=s.drain_jobs, concurrency=s.concurrency
                ),
                rep,
                self.workdir,
            )
            return await workloads.drain(env, "taskrunner")
        from benchmarks.workflows import taskrunner_side

        async with taskrunner_side.taskrunner_worker(self.args.dsn, s, self.workdir, tag) as (
            runner,
            tasks,
        ):
            await taskrunner_side.warm_up(runner, tasks)
            if workload == "chord":
                return await taskrunner_side.chord_run(runner, tasks, s.chord_size, RUN_TIMEOUT)
            return await taskrunner_side.chains_run(
                runner, tasks, s.chains, s.chain_length, RUN_TIMEOUT
            )

    def settings(self) -> dict[str, Any]:
        from benchmarks.workflows import celery_side, taskrunner_side

        found: dict[str, Any] = {
            "taskrunner": {
                "version": _version("taskrunner"),
                "worker": " ".join(
                    ["python", *taskrunner_side.worker_command(self.sizes.concurrency)[1:]]
                ),
                "worker loop": "runner.run_worker(concurrency=...) under uvloop, async handlers",
                "database": "a fresh database per run; durable commits (PostgreSQL defaults)",
                "canvas": "runner.enqueue_workflow(chord(...)) / (chain(...)), one per workflow",
                "result": "runner.workflow_result(id): the body's / the last step's result",
            }
        }
        if self.server is not None:
            from benchmarks.workflows.celery_app import SETTINGS

            found["celery"] = {
                "version": _version("celery"),
                "kombu": _version("kombu"),
                "redis-py": _version("redis"),
                "redis-server": self.server.version,
                "redis persistence": self.server.config,
                "broker": "redis (db 0)",
                "result backend": "redis (db 1); chords join natively (no chord_unlock task)",
                "worker": " ".join(
                    [
                        "python",
                        *celery_side.worker_command(self.args.celery_pool, self.sizes.concurrency)[
                            1:
                        ],
                    ]
                ),
                "settings": SETTINGS,
                "canvas": "chord(header)(body) / chain(...).apply_async(), results by .get()",
            }
        return found


def summarize(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for workload, by_system in runs.items():
        key, higher_better = PRIMARY[workload]
        summary[workload] = {"metric": key, "higher_is_better": higher_better}
        for system, results in by_system.items():
            values = [r[key] for r in results if "error" not in r]
            summary[workload][system] = {
                "median": statistics.median(values) if values else None,
                "min": min(values, default=None),
                "max": max(values, default=None),
                "values": values,
                "failed": len(results) - len(values),
            }
        medians = [summary[workload].get(s, {}).get("median") for s in ("taskrunner", "celery")]
        if all(medians):
            tr, ce = medians
            # > 1 means taskrunner is ahead, whichever way the metric points
            summary[workload]["taskrunner_vs_celery"] = tr / ce if higher_better else ce / tr
    return summary


def _drain_reference() -> str:
    """The taskrunner drain median recorded in benchmarks/results/compare.json, if any."""
    path = RESULTS / "compare.json"
    try:
        doc = json.loads(path.read_text())
        got = doc["summary"]["workloads"]["drain"]["taskrunner"]["metrics"]["jobs_per_s"]
        jobs = doc["meta"]["sizes"]["drain_jobs"]
        return (
            f"compare.json ({doc['meta']['started']}, {jobs:,} jobs): "
            f"{got['median']:,.0f} jobs/s [{got['min']:,.0f}-{got['max']:,.0f}]"
        )
    except (OSError, KeyError, ValueError, TypeError):
        return "no earlier figure in benchmarks/results/compare.json"


def format_table(summary: dict[str, Any], systems: list[str]) -> str:
    units = {"seconds": "s (enqueue to body end)", "steps_per_s": "steps/s", "jobs_per_s": "jobs/s"}
    lines = []
    for workload, row in summary.items():
        lines.append(f"{workload} ({units[row['metric']]}):")
        for system in systems:
            cell = row.get(system)
            if cell is None or (workload == "drain" and system != "taskrunner"):
                continue
            if cell["median"] is None:
                lines.append(f"  {system:<11} FAILED ({cell['failed']} of the runs)")
                continue
            fmt = "{:,.3f}" if row["metric"] == "seconds" else "{:,.0f}"
            lines.append(
                f"  {system:<11} {fmt.format(cell['median'])} "
                f"[{fmt.format(cell['min'])}-{fmt.format(cell['max'])}]"
                + (f"  ({cell['failed']} failed)" if cell["failed"] else "")
            )
        if "taskrunner_vs_celery" in row:
            lines.append(f"  taskrunner vs celery: {row['taskrunner_vs_celery']:.2f}x (>1: faster)")
        if workload == "drain":
            lines.append(f"  earlier: {_drain_reference()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    systems: list[str] = args.systems
    wls: list[str] = args.workloads
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        w: {s: [] for s in systems if w != "drain" or s == "taskrunner"} for w in wls
    }
    failures = 0
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t_all = time.perf_counter()
    print(
        f"benchmarks.workflows: {args.reps} reps, systems {','.join(systems)}, workloads "
        f"{','.join(wls)}, sizes {args.sizes.as_dict()}",
        flush=True,
    )
    with ExitStack() as stack:
        bench = Bench(args, stack)
        settings = bench.settings()
        for rep in range(1, args.reps + 1):
            for workload in wls:
                for system in runs[workload]:
                    t0 = time.perf_counter()
                    try:
                        result = bench.run(workload, system, rep)
                    except Exception as exc:
                        result = {"error": "".join(traceback.format_exception_only(exc)).strip()}
                    runs[workload][system].append(result)
                    took = time.perf_counter() - t0
                    if "error" in result:
                        failures += 1
                        first = result["error"].splitlines()[0]
                        print(f"[rep {rep}] {workload:<7} {system:<11} FAILED: {first}", flush=True)
                    else:
                        key, _ = PRIMARY[workload]
                        print(
                            f"[rep {rep}] {workload:<7} {system:<11} {key} = {result[key]:,.3f}"
                            f" ({took:.1f} s)",
                            flush=True,
                        )
        if not args.keep_files:
            shutil.rmtree(bench.workdir, ignore_errors=True)
        else:
            print(f"worker logs kept in {bench.workdir}")

    summary = summarize(runs)
    doc = {
        "meta": {
            "started": started,
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python -m benchmarks.workflows", *sys.argv[1:]]),
            "reps": args.reps,
            "sizes": args.sizes.as_dict(),
            "celery_pool": args.celery_pool,
            "order": "for each repetition, for each workload: " + " ".join(systems),
            "machine": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            },
            "definitions": {
                "chord seconds": "the body's time.time() at its end - time.time() right "
                "before the canvas is sent (header tasks and body are no-ops)",
                "chains steps/s": "chains x length / (the last step's end - the first "
                "enqueue); every chain is sent before any result is read",
                "drain jobs/s": "benchmarks.compare's drain of taskrunner (no-op jobs, "
                "pre-enqueued), to check that workflows leave the plain path as fast",
                "taskrunner_vs_celery": "> 1 means taskrunner is faster (time: celery / "
                "taskrunner; rate: taskrunner / celery)",
            },
        },
        "settings": settings,
        "runs": runs,
        "summary": summary,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    print()
    print(
        f"Results: medians [min-max] of {args.reps} reps, "
        f"{time.perf_counter() - t_all:.0f} s in all"
    )
    print(f"Both workers run {args.sizes.concurrency} at once; Celery's pool: {args.celery_pool}")
    print(format_table(summary, systems))
    print("\nSettings:")
    print(json.dumps(settings, indent=2))
    print(f"\nwrote {args.output}")
    if failures:
        print(f"{failures} run(s) FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
