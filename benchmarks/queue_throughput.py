"""Throughput of the bare queue (taskrunner.queue.JobQueue) against a real PostgreSQL.

Two measures, each repeated --reps times, each repetition in a fresh schema that is
dropped afterwards:

* enqueue_many: --enqueue-jobs jobs (50,000) inserted in chunks of --chunk (1,000), one
  after the other on one connection; jobs/s.
* claim+complete: --drain-jobs jobs (20,000) enqueued beforehand (not timed), then
  drained by --claimers (4) concurrent coroutines, each looping claim(limit=--batch (100))
  then complete_many; jobs/s. Afterwards every job must be succeeded, else the run fails.

Prints each run, then the median and min-max per measure, and writes
benchmarks/results/queue_throughput.json (or --output).

    python benchmarks/queue_throughput.py [--dsn URI] [--reps N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg

from taskrunner.db import Migrator, ResolvedDsn, create_pool
from taskrunner.db.dsn import redact
from taskrunner.queue import Completion, JobQueue, NewJob

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "queue_throughput.json"
TASK = "bench_noop"
PAYLOAD = b'[1, "two", {"three": 3}]'


class BenchmarkFailed(Exception):
    pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Throughput of the bare queue: enqueue_many, and claim + complete."
    )
    parser.add_argument(
        "--dsn",
        default=os.environ.get("TASKRUNNER_DSN") or DEFAULT_DSN,
        help="PostgreSQL URI (default: $TASKRUNNER_DSN, else %(default)s)",
    )
    parser.add_argument("--reps", type=int, default=5, help="repetitions (default: 5)")
    parser.add_argument("--enqueue-jobs", type=int, default=50_000)
    parser.add_argument("--chunk", type=int, default=1_000, help="jobs per enqueue_many call")
    parser.add_argument("--drain-jobs", type=int, default=20_000)
    parser.add_argument("--claimers", type=int, default=4, help="concurrent claimer coroutines")
    parser.add_argument("--batch", type=int, default=100, help="claim limit per call")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-uvloop", action="store_true", help="use the default event loop")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def new_jobs(count: int) -> list[NewJob]:
    return [NewJob(task=TASK, args=PAYLOAD) for _ in range(count)]


async def with_fresh_schema(
    target: ResolvedDsn, pool_size: int, body: Callable[[JobQueue], Awaitable[float]]
) -> float:
    """Run `body` on a queue over a new, migrated schema; drop the schema afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    pool = await create_pool(target, min_size=pool_size, max_size=pool_size)
    try:
        async with pool.acquire() as conn:
            await Migrator(schema).migrate(conn)
        return await body(JobQueue(pool, schema))
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await pool.close()


async def count_by_status(queue: JobQueue) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in await queue.stats():
        counts[row.status] = counts.get(row.status, 0) + row.count
    return counts


async def measure_enqueue(queue: JobQueue, total: int, chunk: int) -> float:
    chunks = [new_jobs(min(chunk, total - start)) for start in range(0, total, chunk)]
    started = time.perf_counter()
    for jobs in chunks:
        await queue.enqueue_many(jobs)
    elapsed = time.perf_counter() - started
    queued = await queue.count_queued()
    if queued != total:
        raise BenchmarkFailed(f"enqueue_many: {queued} jobs queued, expected {total}")
    return total / elapsed


async def measure_drain(queue: JobQueue, total: int, claimers: int, batch: int) -> float:
    for start in range(0, total, 1_000):  # set-up, not timed
        await queue.enqueue_many(new_jobs(min(1_000, total - start)))
    db: Any = queue.db  # the pool
    await db.execute(f'ANALYZE "{queue.schema}".jobs')

    async def claimer(n: int) -> int:
        done = 0
        while True:
            rows = await queue.claim([TASK], limit=batch, owner=f"bench-{n}", lease=300.0)
            if not rows:
                return done
            acked = await queue.complete_many([Completion(lease=r.lease) for r in rows])
            if acked.lost:
                raise BenchmarkFailed(f"claimer {n}: {len(acked.lost)} leases lost")
            done += len(acked.applied)

    started = time.perf_counter()
    per_claimer = await asyncio.gather(*(claimer(n) for n in range(claimers)))
    elapsed = time.perf_counter() - started
    counts = await count_by_status(queue)
    succeeded = counts.get("succeeded", 0)
    if succeeded != total or sum(per_claimer) != total:
        raise BenchmarkFailed(
            f"claim+complete: {succeeded} of {total} jobs succeeded "
            f"(claimers acked {per_claimer}; statuses {counts})"
        )
    return total / elapsed


def summary(runs: list[float]) -> dict[str, Any]:
    return {
        "unit": "jobs/s",
        "runs": runs,
        "median": round(statistics.median(runs), 1),
        "min": round(min(runs), 1),
        "max": round(max(runs), 1),
    }


async def server_version(target: ResolvedDsn) -> str:
    conn = await asyncpg.connect(target.dsn)
    try:
        version: str = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return version


async def run(args: argparse.Namespace, loop_name: str) -> dict[str, Any]:
    target = ResolvedDsn(args.dsn, "--dsn/$TASKRUNNER_DSN")
    pg_version = await server_version(target)
    print(f"PostgreSQL {pg_version} at {target.redacted}; event loop: {loop_name}")
    print(
        f"enqueue_many: {args.enqueue_jobs:,} jobs in chunks of {args.chunk:,}; "
        f"claim+complete: {args.drain_jobs:,} jobs, {args.claimers} claimers, "
        f"claim limit {args.batch}; {args.reps} repetitions\n"
    )
    enqueue_runs: list[float] = []
    drain_runs: list[float] = []
    for rep in range(1, args.reps + 1):
        enqueue_rate = await with_fresh_schema(
            target, 1, lambda q: measure_enqueue(q, args.enqueue_jobs, args.chunk)
        )
        enqueue_runs.append(enqueue_rate := round(enqueue_rate, 1))
        drain_rate = await with_fresh_schema(
            target,
            args.claimers + 1,
            lambda q: measure_drain(q, args.drain_jobs, args.claimers, args.batch),
        )
        drain_runs.append(drain_rate := round(drain_rate, 1))
        print(
            f"rep {rep}/{args.reps}: enqueue_many {enqueue_rate:>9,.0f} jobs/s   "
            f"claim+complete {drain_rate:>9,.0f} jobs/s"
        )
    measures = {"enqueue_many": summary(enqueue_runs), "claim_complete": summary(drain_runs)}
    print()
    for name, m in measures.items():
        print(
            f"{name:<15} median {m['median']:>9,.0f} jobs/s   "
            f"(min {m['min']:,.0f} - max {m['max']:,.0f}, {args.reps} runs)"
        )
    return {
        "benchmark": "queue_throughput",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dsn": redact(args.dsn),
        "postgres": pg_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "event_loop": loop_name,
        "params": {
            "reps": args.reps,
            "enqueue_jobs": args.enqueue_jobs,
            "chunk": args.chunk,
            "drain_jobs": args.drain_jobs,
            "claimers": args.claimers,
            "claim_limit": args.batch,
        },
        "measures": measures,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runner: Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]] = asyncio.run
    loop_name = "asyncio"
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            runner = uvloop.run
            loop_name = f"uvloop {version('uvloop')}"
    try:
        result = runner(run(args, loop_name))
    except BenchmarkFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    write_json(args.output, result)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
