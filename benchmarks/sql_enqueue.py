"""SQL enqueue against Python's single enqueue: jobs per second of one-job enqueues,
`await runner.enqueue(task, ...)` against `SELECT <schema>.enqueue(...)` on the runner's
own pool, both with the same arguments and no idempotency key, from --producers
coroutines at once (the comparison's enqueue_single shape), interleaved over --reps
repetitions (each variant in turn first), each in a fresh schema.

    python -m benchmarks.sql_enqueue [--dsn URI] [--reps 5] [--jobs 5000] [--producers 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from typing import Any

import asyncpg

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def run_once(dsn: str, variant: str, jobs: int, producers: int) -> float:
    from taskrunner import TaskRunner

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    runner = TaskRunner(dsn, schema=schema)

    @runner.task(name="bench.noop")
    async def noop(seq: int, t: float) -> None:
        return None

    async with runner:
        db = runner.job_queue.db
        sql = f'SELECT "{schema}".enqueue($1, $2::jsonb)'

        async def python_one(i: int) -> Any:
            return await runner.enqueue(noop, i, 0.0)

        async def sql_one(i: int) -> Any:
            return await db.fetchval(sql, "bench.noop", f"[{i}, 0.0]")

        one = python_one if variant == "python" else sql_one
        for i in range(50):  # warm up the statement caches
            await one(-i - 1)
        counter = iter(range(jobs))

        async def producer() -> None:
            for i in counter:
                await one(i)

        started = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(producers)))
        elapsed = time.perf_counter() - started
        count = await db.fetchval(f'SELECT count(*) FROM "{schema}".jobs')
        assert count == jobs + 50, count
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()
    return jobs / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("TASKRUNNER_DSN") or DEFAULT_DSN)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=5_000)
    parser.add_argument("--producers", type=int, default=16)
    args = parser.parse_args(argv)
    import uvloop

    rates: dict[str, list[float]] = {"python": [], "sql": []}
    for rep in range(args.reps):
        for variant in ("python", "sql") if rep % 2 == 0 else ("sql", "python"):
            rate = uvloop.run(run_once(args.dsn, variant, args.jobs, args.producers))
            rates[variant].append(rate)
            print(f"rep {rep + 1}  {variant:<6} {rate:8.0f} jobs/s", flush=True)
    medians = {v: statistics.median(r) for v, r in rates.items()}
    print(
        f"median: python {medians['python']:.0f} jobs/s, sql {medians['sql']:.0f} jobs/s, "
        f"sql / python {medians['sql'] / medians['python']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
