"""What queue limits cost: the comparison's drain (no-op jobs, worker concurrency 16,
uvloop, the worker in a process of its own) of an unlimited queue, of a queue limited to
8 running jobs, and of a serial queue; the unlimited drain also with another checkout's
code (`--baseline PATH`, e.g. the main branch) for an A/B of the claim without limits.
Variants are interleaved over --reps repetitions, each in turn first.

Each run gets a fresh schema: the worker process migrates it, enqueues the jobs (not
timed), configures the queue, then times `run_worker(concurrency=16,
stop_when_idle=True)`; afterwards every job must have succeeded. It also times the claim
of a serial queue against the ordinary claim: one job claimed and completed at a time on
one connection (--claims cycles each).

    python -m benchmarks.queue_limits [--dsn URI] [--reps 3] [--jobs 20000]
        [--serial-jobs 2000] [--baseline /path/to/main/checkout]

Prints every run, then the medians side by side, and writes
benchmarks/results/queue-limits.json (or --output).
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "queue-limits.json"
CONCURRENCY = 16
CHUNK = 10_000
LIMITS = {"unlimited": None, "limited8": 8, "serial": 1}


def build_runner(dsn: str, schema: str) -> Any:
    from taskrunner import TaskRunner

    runner = TaskRunner(dsn, schema=schema)

    @runner.task(name="bench.noop")
    async def noop(seq: int) -> None:
        return None

    return runner, noop


async def worker_main(dsn: str, schema: str, jobs: int, limit: int | None) -> None:
    runner, noop = build_runner(dsn, schema)
    async with runner:
        for start in range(0, jobs, CHUNK):
            await runner.enqueue_many(noop, [(i,) for i in range(start, min(jobs, start + CHUNK))])
        if limit is not None:
            await runner.configure_queue("default", concurrency=limit)
        await runner.job_queue.db.execute(f'ANALYZE "{schema}".jobs')
        started = time.perf_counter()
        await runner.run_worker(concurrency=CONCURRENCY, stop_when_idle=True)
        elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed}))


async def claim_cost(dsn: str, cycles: int) -> dict[str, float]:
    """Mean milliseconds of one claim of one job, ordinary and through a serial queue."""
    from taskrunner.db import Migrator
    from taskrunner.queue import Completion, JobQueue, NewJob
    from taskrunner.queue.queues import QueueControls

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(dsn)
    try:
        await Migrator(schema).migrate(conn)
        queue, controls = JobQueue(conn, schema), QueueControls(conn, schema)
        await queue.enqueue_many([NewJob(task="t", queue="plain") for _ in range(cycles)])
        await queue.enqueue_many([NewJob(task="t", queue="serial") for _ in range(cycles)])
        await controls.configure("serial", concurrency=1, rate_limit=None, rate_per=None)
        await conn.execute(f'ANALYZE "{schema}".jobs')
        spent = {"ordinary": 0.0, "serial": 0.0}
        for _ in range(cycles):
            t = time.perf_counter()
            (job,) = await queue.claim(["t"], limit=1, owner="w", queues=["plain"])
            spent["ordinary"] += time.perf_counter() - t
            await queue.complete_many([Completion(lease=job.lease)])
            t = time.perf_counter()
            (job,) = await controls.claim_limited(
                "serial", ["t"], limit=1, owner="w", lease={"t": 30.0}
            )
            spent["serial"] += time.perf_counter() - t
            await queue.complete_many([Completion(lease=job.lease)])
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()
    return {f"{k}_claim_ms": v * 1000 / cycles for k, v in spent.items()}


async def outcome(dsn: str, schema: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            f'SELECT status::text, count(*) AS n FROM "{schema}".jobs GROUP BY 1'
        )
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
    return {r["status"]: r["n"] for r in rows}


def run_once(dsn: str, variant: str, jobs: int, code: Path) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    limit = LIMITS[variant.removeprefix("baseline-")]
    env = {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", "--dsn", dsn,
         "--schema", schema, "--jobs", str(jobs), "--limit", str(limit or 0)],
        cwd=code, env=env, capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    counts = asyncio.run(outcome(dsn, schema))
    if proc.returncode != 0:
        raise SystemExit(f"worker failed:\n{proc.stdout}\n{proc.stderr}")
    seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
    if counts.get("succeeded") != jobs:
        raise SystemExit(f"not every job succeeded: {counts}")
    return {"variant": variant, "jobs": jobs, "seconds": seconds, "jobs_per_s": jobs / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("TASKRUNNER_DSN") or DEFAULT_DSN)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--serial-jobs", type=int, default=2_000)
    parser.add_argument("--claims", type=int, default=500)
    parser.add_argument("--baseline", type=Path, default=None, help="a checkout to compare")
    parser.add_argument("--variants", default="unlimited,limited8,serial")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import uvloop

        uvloop.run(worker_main(args.dsn, args.schema, args.jobs, args.limit or None))
        return 0

    variants = args.variants.split(",")
    if args.baseline is not None:
        variants.insert(0, "baseline-unlimited")
    runs: list[dict[str, Any]] = []
    for rep in range(args.reps):
        # Interleaved, each variant in turn first, so drifts of the machine hit all alike.
        shift = rep % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            code = args.baseline if variant.startswith("baseline-") else ROOT
            jobs = args.serial_jobs if variant == "serial" else args.jobs
            result = run_once(args.dsn, variant, jobs, code) | {"rep": rep + 1}
            runs.append(result)
            print(
                f"rep {rep + 1}  {variant:<19} {result['jobs']:>6} jobs  "
                f"{result['seconds']:7.2f}s  {result['jobs_per_s']:8.0f} jobs/s",
                flush=True,
            )
    medians = {
        v: statistics.median(r["jobs_per_s"] for r in runs if r["variant"] == v) for v in variants
    }
    spread = {v: [round(r["jobs_per_s"]) for r in runs if r["variant"] == v] for v in variants}
    for v in variants:
        print(f"median {v:<19} {medians[v]:8.0f} jobs/s   runs {spread[v]}")
    if "unlimited" in medians:
        for v in variants:
            print(f"  {v} / unlimited: {medians[v] / medians['unlimited']:.3f}")
    costs = asyncio.run(claim_cost(args.dsn, args.claims))
    print("claim of one job, mean ms: " + ", ".join(f"{k} {v:.3f}" for k, v in costs.items()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "jobs": args.jobs,
                "serial_jobs": args.serial_jobs,
                "concurrency": CONCURRENCY,
                "reps": args.reps,
                "runs": runs,
                "median_jobs_per_s": medians,
                "claim_cost": costs,
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
