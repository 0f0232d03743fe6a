"""Compare taskrunner with PGQueuer, Procrastinate and a hand-written asyncpg baseline.

    python -m benchmarks.compare [--reps 3] [--quick] [--systems a,b] [--workloads x,y]

Every workload runs for every system, each run in a fresh database of its own, the
systems interleaved (A B C D A B C D ...) for --reps repetitions; a pgbench ceiling run
opens each repetition. Prints medians with min-max, each system's ratio to the baseline
and to the ceiling, with every setting, and writes benchmarks/results/compare.json and
compare.png. Exit status 1 if any run failed (a short count is a failure, not a number).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

import uvloop

from benchmarks.compare import adapters, dbutil, pgbench, record, report, workloads
from benchmarks.compare.config import SYSTEMS, WORKLOADS, Sizes, default_dsn

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _csv(choices: tuple[str, ...]) -> Any:
    def parse(text: str) -> list[str]:
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(choices)}")
        return items

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.compare",
        description="taskrunner vs PGQueuer vs Procrastinate vs an asyncpg baseline.",
    )
    p.add_argument("--reps", type=int, default=3, help="repetitions (default 3, minimum 1)")
    p.add_argument("--quick", action="store_true", help="all sizes ~20x smaller (smoke test)")
    p.add_argument(
        "--systems",
        type=_csv(SYSTEMS),
        default=list(SYSTEMS),
        help=f"comma-separated subset of {','.join(SYSTEMS)}",
    )
    p.add_argument(
        "--workloads",
        type=_csv(WORKLOADS),
        default=list(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)}",
    )
    p.add_argument(
        "--dsn",
        default=default_dsn(),
        help="server to create the databases on (default $BENCH_DSN, else %(default)s)",
    )
    p.add_argument("--no-pgbench", action="store_true", help="skip the pgbench ceiling")
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON path, the PNG goes next to it (default "
        "benchmarks/results/compare.json, compare-quick.json with --quick)",
    )
    p.add_argument("--keep-db", action="store_true", help="do not drop the databases")
    p.add_argument("--keep-files", action="store_true", help="keep the worker logs/outputs")
    return p.parse_args(argv)


def _version(dist: str) -> str:
    try:
        return pkg_version(dist)
    except PackageNotFoundError:
        return "not installed"


async def amain(args: argparse.Namespace) -> int:
    sizes = Sizes.quick() if args.quick else Sizes()
    systems: list[str] = args.systems
    wls: list[str] = args.workloads
    workdir = Path(tempfile.mkdtemp(prefix="bench_compare_"))

    # Adapters that cannot even be imported fail all their runs, the others go on.
    settings: dict[str, dict[str, Any]] = {}
    versions: dict[str, str] = {}
    broken: dict[str, str] = {}
    for system in systems:
        try:
            adapter = adapters.load(system, sizes.concurrency)
            settings[system] = {"version": adapter.version(), **adapter.settings()}
            versions[system] = adapter.version()
            if system == "taskrunner":
                from taskrunner import TaskRunner  # noqa: F401 - fails early if absent
        except Exception as exc:
            broken[system] = f"{type(exc).__name__}: {exc}"
            settings.setdefault(system, {})["unavailable"] = broken[system]

    cpu_iters = record.calibrate(sizes.cpu_job_ms) if "cpu" in wls else 0
    server = await dbutil.server_facts(args.dsn)
    meta: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.compare", *sys.argv[1:]]),
        "quick": args.quick,
        "reps": args.reps,
        "systems": systems,
        "workloads": wls,
        "order": "for each repetition: pgbench, then for each workload: " + " ".join(systems),
        "sizes": sizes.as_dict(),
        "cpu_iters_per_job": cpu_iters,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "event_loop": f"uvloop {_version('uvloop')} (harness and every worker process)",
        },
        "postgres": {**server, "dsn": dbutil.redact(args.dsn)},
        "versions": {
            **versions,
            "asyncpg": _version("asyncpg"),
            "psycopg": _version("psycopg"),
        },
        "pgbench": {
            "script": str(pgbench.SCRIPT.relative_to(RESULTS.parents[1])),
            "clients": sizes.pgbench_clients,
            "threads": sizes.pgbench_threads,
            "seconds": sizes.pgbench_seconds,
        },
        "definitions": {
            "drain/backlog jobs/s": "jobs run / (last worker loop return - first handler "
            "start); the loop returns only after the system has recorded every finish",
            "latency": "handler start time.time() - time.time() just before the enqueue call",
            "steady latency": "handler start - the job's scheduled arrival time",
            "steady achieved": "jobs / (last handler start - first scheduled arrival)",
            "cpu speed-up": "time of the same jobs run one after the other in the harness "
            "process, measured right before each system's run / (last job end - first job "
            "start), both timed inside the job function",
            "vs baseline": "system median / baseline median of the same metric",
            "of ceiling": "system median jobs/s / pgbench median jobs/s",
        },
    }

    runs: dict[str, dict[str, list[dict[str, Any]]]] = {w: {s: [] for s in systems} for w in wls}
    ceiling: list[dict[str, Any]] = []
    failures = 0

    def save(final: bool) -> dict[str, Any]:
        summary = report.summarize(runs, ceiling)
        doc = {
            "meta": {
                **meta,
                "finished": datetime.now(UTC).isoformat(timespec="seconds") if final else None,
            },
            "settings": settings,
            "pgbench_runs": ceiling,
            "runs": runs,
            "summary": summary,
        }
        report.write_json(args.output, doc)
        return summary

    print(
        f"benchmarks.compare: {'quick' if args.quick else 'full'} sizes, {args.reps} reps, "
        f"systems {','.join(systems)}, workloads {','.join(wls)}",
        flush=True,
    )
    t_all = time.perf_counter()
    for rep in range(1, args.reps + 1):
        if not args.no_pgbench:
            try:
                res = await pgbench.run(args.dsn, sizes, tag=f"r{rep}", keep=args.keep_db)
                print(f"[rep {rep}] pgbench ceiling: {res['jobs_per_s']:,.0f} jobs/s", flush=True)
            except Exception as exc:
                res = {"error": f"{type(exc).__name__}: {exc}"}
                failures += 1
                print(f"[rep {rep}] pgbench FAILED: {res['error']}", flush=True)
            ceiling.append(res)
        env = workloads.Env(
            args.dsn, sizes, rep, workdir, keep_db=args.keep_db, cpu_iters=cpu_iters
        )
        for wl in wls:
            for system in systems:
                t0 = time.perf_counter()
                if system in broken:
                    res = {"error": f"adapter unavailable: {broken[system]}"}
                else:
                    try:
                        runner = workloads.RUNNERS[wl]
                        res = await runner(env, system)
                    except workloads.Failure as exc:
                        res = {"error": str(exc)}
                    except Exception as exc:
                        res = {"error": "".join(traceback.format_exception_only(exc)).strip()}
                runs[wl][system].append(res)
                took = time.perf_counter() - t0
                if "error" in res:
                    failures += 1
                    first = res["error"].splitlines()[0] if res["error"] else "error"
                    print(
                        f"[rep {rep}] {wl:<14} {system:<13} FAILED ({took:.1f} s): {first}",
                        flush=True,
                    )
                else:
                    key = report.PRIMARY[wl]
                    m = next(x for x in report.METRICS[wl] if x.key == key)
                    print(
                        f"[rep {rep}] {wl:<14} {system:<13} {m.label} = "
                        f"{report.fmt_value(res[key], m.fmt)} ({took:.1f} s)",
                        flush=True,
                    )
        save(final=False)

    summary = save(final=True)
    print()
    print(
        f"Results ({'quick' if args.quick else 'full'} sizes, {args.reps} reps, "
        f"medians [min-max], {time.perf_counter() - t_all:.0f} s in all)"
    )
    print(
        f"PostgreSQL: {server['version'].split(' on ')[0]}; {os.cpu_count()} CPUs; "
        f"Python {platform.python_version()}; uvloop everywhere"
    )
    print()
    print(report.format_table(summary, systems, wls, sizes))
    print(report.format_settings(settings))
    png = args.output.with_suffix(".png")
    title = (
        f"taskrunner vs peers ({'quick' if args.quick else 'full'} sizes, "
        f"{args.reps} reps; bars = median, whiskers = min-max)"
    )
    try:
        notes = [f"{s}: {settings[s].get('version', 'unavailable')}" for s in systems]
        ceiling_stats = summary.get("pgbench_ceiling")
        if ceiling_stats:
            notes.append(
                f"pgbench ceiling: {ceiling_stats['median']:,.0f} jobs/s\n"
                f"  (claim 10 + delete per tx,\n  {sizes.pgbench_clients} clients, "
                f"{sizes.pgbench_seconds} s)"
            )
        notes += [
            f"PostgreSQL {server['version'].split()[1]}, {os.cpu_count()} CPUs",
            f"Python {platform.python_version()}, uvloop",
            f"worker concurrency {sizes.concurrency}",
        ]
        report.write_png(png, summary, systems, wls, sizes, title, notes)
    except Exception as exc:
        print(f"chart not written: {type(exc).__name__}: {exc}")
    print(f"\nwrote {args.output} and {png}")
    if failures:
        print(f"{failures} run(s) FAILED (see above and the JSON's errors)")
    if args.keep_files:
        print(f"worker logs and outputs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.reps < 1:
        raise SystemExit("--reps must be at least 1")
    if args.output is None:
        args.output = RESULTS / ("compare-quick.json" if args.quick else "compare.json")
    return uvloop.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
