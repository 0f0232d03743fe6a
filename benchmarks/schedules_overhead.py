"""What ticking schedules cost a worker's drain: the comparison's drain (no-op jobs,
concurrency 16, uvloop, the worker in a process of its own) with no schedules, and with
ten schedules declared and ticking every second, interleaved over --reps repetitions
(ABBA: each variant in turn goes first).

Each run gets a fresh schema: --jobs no-op jobs are enqueued beforehand (not timed),
then a worker process (`--worker`) opens its runner and times `run_worker(concurrency=16,
stop_when_idle=True)` until it returns; the drain rate is --jobs over that time. With
schedules, the same worker also writes the ten schedules at its start and enqueues and
runs their ticks while it drains. Afterwards every drained job must have succeeded.

    python -m benchmarks.schedules_overhead [--dsn URI] [--reps 3] [--jobs 100000]

Prints every run, then the medians side by side, and writes
benchmarks/results/schedules-overhead.json (or --output).
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
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "schedules-overhead.json"
SCHEDULES = 10
CONCURRENCY = 16
CHUNK = 10_000


def build_runner(dsn: str, schema: str, schedules: int) -> Any:
    from taskrunner import TaskRunner

    runner = TaskRunner(dsn, schema=schema)

    @runner.task(name="bench.noop")
    async def noop(seq: int) -> None:
        return None

    @runner.task(name="bench.tick")
    async def tick(schedule: int) -> None:
        return None

    for index in range(schedules):
        runner.periodic(
            every=timedelta(seconds=1), name=f"bench-{index}", kwargs={"schedule": index}
        )(tick)
    return runner, noop


async def worker_main(dsn: str, schema: str, schedules: int) -> None:
    runner, _ = build_runner(dsn, schema, schedules)
    async with runner:
        started = time.perf_counter()
        await runner.run_worker(concurrency=CONCURRENCY, stop_when_idle=True)
        elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed}))


async def prepare(dsn: str, schema: str, jobs: int) -> None:
    runner, noop = build_runner(dsn, schema, 0)
    async with runner:
        for start in range(0, jobs, CHUNK):
            await runner.enqueue_many(noop, [(i,) for i in range(start, min(jobs, start + CHUNK))])
        await runner.job_queue.db.execute(f'ANALYZE "{schema}".jobs')


async def outcome(dsn: str, schema: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f'SELECT task, status::text, count(*) AS n FROM "{schema}".jobs GROUP BY 1, 2'
        )
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()
    return {f"{r['task']} {r['status']}": r["n"] for r in rows}


def run_once(dsn: str, jobs: int, schedules: int) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(prepare(dsn, schema, jobs))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.schedules_overhead", "--worker", "--dsn", dsn,
         "--schema", schema, "--schedules", str(schedules)],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    counts = asyncio.run(outcome(dsn, schema))
    if proc.returncode != 0:
        raise SystemExit(f"worker failed:\n{proc.stdout}\n{proc.stderr}")
    seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
    if counts.get("bench.noop succeeded") != jobs:
        raise SystemExit(f"not every job succeeded: {counts}")
    return {
        "schedules": schedules,
        "seconds": seconds,
        "jobs_per_s": jobs / seconds,
        "tick_jobs": sum(n for k, n in counts.items() if k.startswith("bench.tick")),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("TASKRUNNER_DSN") or DEFAULT_DSN)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    parser.add_argument("--schedules", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import uvloop

        uvloop.run(worker_main(args.dsn, args.schema, args.schedules))
        return 0

    runs: list[dict[str, Any]] = []
    for rep in range(args.reps):
        # Interleaved, and in turn first, so drifts of the machine hit both alike.
        for schedules in (0, SCHEDULES) if rep % 2 == 0 else (SCHEDULES, 0):
            result = run_once(args.dsn, args.jobs, schedules)
            runs.append(result | {"rep": rep + 1})
            print(
                f"rep {rep + 1}  schedules {schedules:>2}  {result['seconds']:6.2f}s  "
                f"{result['jobs_per_s']:8.0f} jobs/s  tick jobs {result['tick_jobs']}"
            )
    medians = {
        s: statistics.median(r["jobs_per_s"] for r in runs if r["schedules"] == s)
        for s in (0, SCHEDULES)
    }
    ratio = medians[SCHEDULES] / medians[0]
    print(
        f"median drain: {medians[0]:.0f} jobs/s without schedules, "
        f"{medians[SCHEDULES]:.0f} jobs/s with {SCHEDULES} ticking ({ratio:.3f}x)"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "jobs": args.jobs,
                "concurrency": CONCURRENCY,
                "reps": args.reps,
                "runs": runs,
                "median_jobs_per_s": {"without": medians[0], "with_ten": medians[SCHEDULES]},
                "ratio": ratio,
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
