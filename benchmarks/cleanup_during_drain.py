"""What a big cleanup costs a worker's drain: the comparison's drain (no-op jobs,
concurrency 16, uvloop, the worker in a process of its own) beside --rows finished jobs,
with no cleanup, and with `runner.cleanup(succeeded="remove")` of those rows running in
another process at the same time, interleaved over --reps repetitions (ABBA: each
variant in turn goes first).

Each run gets a fresh schema holding --rows succeeded jobs that finished 30 days ago
(written by one INSERT, not timed) and --jobs queued no-op jobs; the table is ANALYZEd.
The worker keeps finished jobs (retention None) so that only the cleanup removes the old
rows. Then the worker process times `run_worker(concurrency=16, stop_when_idle=True)`;
the drain rate is --jobs over that time. With cleanup, a cleaner process starts first
and removes the old rows (older than a day: never the drain's own) in its batches, at
--duty-cycle (the library's default, 0.1, unless given), while the worker drains.
Afterwards every drained job must have succeeded, and with cleanup every old row must
be gone.

    python -m benchmarks.cleanup_during_drain [--dsn URI] [--reps 3] [--rows 1000000]
                                              [--jobs 100000] [--duty-cycle 0.1]
    python -m benchmarks.cleanup_during_drain --reps 1 --rows 50000 --jobs 10000  # quick

Prints every run, then the medians side by side, and writes
benchmarks/results/cleanup-during-drain.json (or --output).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "cleanup-during-drain.json"
CONCURRENCY = 16
CHUNK = 10_000
TIMEOUT = 1800


def build_runner(dsn: str, schema: str) -> Any:
    from taskrunner import Retention, TaskRunner

    runner = TaskRunner(dsn, schema=schema, retention=Retention(succeeded=None))

    @runner.task(name="bench.noop")
    async def noop(seq: int) -> None:
        return None

    return runner, noop


async def worker_main(dsn: str, schema: str) -> None:
    runner, _ = build_runner(dsn, schema)
    async with runner:
        started = time.perf_counter()
        await runner.run_worker(concurrency=CONCURRENCY, stop_when_idle=True)
        elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed}))


async def cleaner_main(dsn: str, schema: str, batch: int, duty_cycle: float) -> None:
    runner, _ = build_runner(dsn, schema)
    async with runner:
        started = time.perf_counter()
        counts = await runner.cleanup(
            succeeded="remove",
            older_than=timedelta(days=1),
            batch_size=batch,
            duty_cycle=duty_cycle,
        )
        elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "removed": counts["succeeded"]}))


async def prepare(dsn: str, schema: str, rows: int, jobs: int) -> None:
    runner, noop = build_runner(dsn, schema)
    async with runner:
        await runner.job_queue.db.execute(
            f'INSERT INTO "{schema}".jobs (task, status, args, attempts, created_at, '
            "started_at, finished_at, result) "
            "SELECT 'bench.noop', 'succeeded', jsonb_build_array(i), 1, "
            "now() - interval '30 days', now() - interval '30 days', "
            "now() - interval '30 days' + i * interval '1 millisecond', 'null' "
            "FROM generate_series(1, $1) AS i",
            rows,
            timeout=TIMEOUT,
        )
        for start in range(0, jobs, CHUNK):
            await runner.enqueue_many(noop, [(i,) for i in range(start, min(jobs, start + CHUNK))])
        await runner.job_queue.db.execute(f'VACUUM ANALYZE "{schema}".jobs', timeout=TIMEOUT)


async def outcome(dsn: str, schema: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            f"SELECT count(*) FILTER (WHERE finished_at < now() - interval '1 day') AS old, "
            "count(*) FILTER (WHERE finished_at >= now() - interval '1 day' "
            "AND status = 'succeeded') AS drained, "
            "count(*) FILTER (WHERE finished_at IS NULL OR status <> 'succeeded') AS other "
            f'FROM "{schema}".jobs'
        )
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()
    return dict(row)


def spawn(mode: str, dsn: str, schema: str, batch: int, duty_cycle: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.cleanup_during_drain", mode, "--dsn", dsn,
         "--schema", schema, "--batch", str(batch), "--duty-cycle", str(duty_cycle)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str], what: str) -> dict[str, Any]:
    out, err = proc.communicate(timeout=TIMEOUT)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{out}\n{err}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run_once(
    dsn: str, rows: int, jobs: int, batch: int, duty_cycle: float, cleanup: bool
) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(prepare(dsn, schema, rows, jobs))
    cleaner = spawn("--cleaner", dsn, schema, batch, duty_cycle) if cleanup else None
    started = time.perf_counter()
    worker = spawn("--worker", dsn, schema, batch, duty_cycle)
    drained = finish(worker, "worker")
    drain_end = time.perf_counter() - started
    cleaned = finish(cleaner, "cleaner") if cleaner is not None else None
    counts = asyncio.run(outcome(dsn, schema))
    if counts["drained"] != jobs or counts["other"]:
        raise SystemExit(f"not every job succeeded: {counts}")
    if cleaned is not None and (counts["old"] or cleaned["removed"] != rows):
        raise SystemExit(f"the cleanup left old rows: {counts}, {cleaned}")
    result = {
        "cleanup": cleanup,
        "seconds": drained["seconds"],
        "jobs_per_s": jobs / drained["seconds"],
    }
    if cleaned is not None:
        result |= {
            "cleanup_seconds": cleaned["seconds"],
            "removed_per_s": cleaned["removed"] / cleaned["seconds"],
            # how much of the drain ran beside the cleanup (1.0: all of it)
            "overlap": min(1.0, cleaned["seconds"] / drain_end),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("TASKRUNNER_DSN") or DEFAULT_DSN)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000, help="old rows to remove")
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs to drain")
    parser.add_argument("--batch", type=int, default=1_000, help="the cleanup's batch size")
    parser.add_argument(
        "--duty-cycle", type=float, default=0.1, help="the cleanup's duty_cycle (1: no rest)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cleaner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker or args.cleaner:
        import uvloop

        main_of = worker_main(args.dsn, args.schema) if args.worker else None
        uvloop.run(main_of or cleaner_main(args.dsn, args.schema, args.batch, args.duty_cycle))
        return 0

    runs: list[dict[str, Any]] = []
    for rep in range(args.reps):
        # Interleaved, and in turn first, so drifts of the machine hit both alike.
        for cleanup in (False, True) if rep % 2 == 0 else (True, False):
            result = run_once(args.dsn, args.rows, args.jobs, args.batch, args.duty_cycle, cleanup)
            runs.append(result | {"rep": rep + 1})
            extra = (
                f"  cleanup {result['cleanup_seconds']:6.2f}s "
                f"({result['removed_per_s']:8.0f} rows/s, overlap {result['overlap']:.2f})"
                if cleanup
                else ""
            )
            print(
                f"rep {rep + 1}  cleanup {'yes' if cleanup else 'no ':3}  "
                f"{result['seconds']:6.2f}s  {result['jobs_per_s']:8.0f} jobs/s{extra}",
                flush=True,
            )
    medians = {
        c: statistics.median(r["jobs_per_s"] for r in runs if r["cleanup"] is c)
        for c in (False, True)
    }
    cleanup_runs = [r for r in runs if r["cleanup"]]
    removed_rate = statistics.median(r["removed_per_s"] for r in cleanup_runs)
    cleanup_seconds = statistics.median(r["cleanup_seconds"] for r in cleanup_runs)
    ratio = medians[True] / medians[False]
    # Each rep's two runs are next to each other in time: their ratio is the least
    # disturbed by the machine's drift from minute to minute.
    pairs = [
        next(r for r in runs if r["rep"] == rep and r["cleanup"])["jobs_per_s"]
        / next(r for r in runs if r["rep"] == rep and not r["cleanup"])["jobs_per_s"]
        for rep in range(1, args.reps + 1)
    ]
    pair_ratio = statistics.median(pairs)
    print(
        f"median drain: {medians[False]:.0f} jobs/s alone, {medians[True]:.0f} jobs/s beside "
        f"a cleanup of {args.rows} rows, duty cycle {args.duty_cycle:g} ({ratio:.3f}x); "
        "the cleanup took a median "
        f"{cleanup_seconds:.1f}s ({removed_rate:.0f} rows/s); ratio within each rep: "
        f"{', '.join(f'{p:.2f}' for p in pairs)} (median {pair_ratio:.3f})"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "rows": args.rows,
                "jobs": args.jobs,
                "batch": args.batch,
                "duty_cycle": args.duty_cycle,
                "concurrency": CONCURRENCY,
                "reps": args.reps,
                "runs": runs,
                "median_jobs_per_s": {"alone": medians[False], "with_cleanup": medians[True]},
                "ratio": ratio,
                "ratios_within_reps": pairs,
                "median_ratio_within_reps": pair_ratio,
                "median_cleanup_seconds": cleanup_seconds,
                "median_removed_per_s": removed_rate,
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
