"""What tracing costs a worker's drain: the comparison's drain (no-op async jobs,
concurrency 16, uvloop, the worker in a process of its own) with tracing off and with
`TaskRunner(tracing=True)` under an OpenTelemetry SDK (a BatchSpanProcessor to an
exporter that drops every span), interleaved over --reps repetitions (each mode in turn
goes first).

Each run gets a fresh schema holding --jobs queued no-op jobs (enqueued in chunks, not
timed) and ANALYZEd. With tracing on, each job carries a stored trace context as a
traced enqueue leaves it, so every attempt's span has a remote parent to extract. The
worker process times `run_worker(concurrency=16, stop_when_idle=True)`; the drain rate
is --jobs over that time. Afterwards every job must have succeeded.

    python -m benchmarks.tracing_overhead [--dsn URI] [--reps 3] [--jobs 50000]
    python -m benchmarks.tracing_overhead --reps 1 --jobs 2000        # quick
    python -m benchmarks.tracing_overhead --modes off                 # e.g. on an older tree

Prints every run, then the medians, the ratio of on to off within each repetition, and
writes benchmarks/results/tracing-overhead.json (or --output). The issue's targets:
tracing on at least 0.8 of the rate with tracing off; off within 2 % of the tree before
tracing existed (run `--modes off` there and here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
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
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "tracing-overhead.json"
CONCURRENCY = 16
CHUNK = 10_000
TIMEOUT = 1800
MODES = ("off", "on")


def build_runner(dsn: str, schema: str, tracing: bool) -> Any:
    from taskrunner import TaskRunner

    options = {"tracing": True} if tracing else {}  # so that --modes off runs on older trees
    runner = TaskRunner(dsn, schema=schema, **options)

    @runner.task(name="bench.noop")
    async def noop(seq: int) -> None:
        return None

    return runner, noop


def install_sdk() -> None:
    """An SDK as an application sets one up, exporting to nowhere."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Nowhere(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Nowhere()))
    trace.set_tracer_provider(provider)


async def worker_main(dsn: str, schema: str, tracing: bool) -> None:
    if tracing:
        install_sdk()
    runner, _ = build_runner(dsn, schema, tracing)
    async with runner:
        started = time.perf_counter()
        await runner.run_worker(concurrency=CONCURRENCY, stop_when_idle=True)
        elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed}))


async def prepare(dsn: str, schema: str, jobs: int, tracing: bool) -> None:
    runner, noop = build_runner(dsn, schema, False)
    async with runner:
        for start in range(0, jobs, CHUNK):
            await runner.enqueue_many(noop, [(i,) for i in range(start, min(jobs, start + CHUNK))])
        if tracing:  # what a traced enqueue stores: one context per enqueue call
            parent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
            await runner.job_queue.db.execute(
                f'UPDATE "{schema}".jobs SET trace_context = $1::text::jsonb',
                json.dumps({"traceparent": parent}),
                timeout=TIMEOUT,
            )
        await runner.job_queue.db.execute(f'VACUUM ANALYZE "{schema}".jobs', timeout=TIMEOUT)


async def outcome(dsn: str, schema: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'succeeded') AS succeeded, "
            f"count(*) FILTER (WHERE status <> 'succeeded') AS other FROM \"{schema}\".jobs"
        )
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()
    return dict(row)


def run_once(dsn: str, jobs: int, mode: str) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(prepare(dsn, schema, jobs, mode == "on"))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.tracing_overhead", "--worker", mode, "--dsn", dsn,
         "--schema", schema],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    if proc.returncode != 0:
        asyncio.run(outcome(dsn, schema))
        raise SystemExit(f"worker failed:\n{proc.stdout}\n{proc.stderr}")
    seconds = json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]
    counts = asyncio.run(outcome(dsn, schema))
    if counts["succeeded"] != jobs or counts["other"]:
        raise SystemExit(f"not every job succeeded: {counts}")
    return {"mode": mode, "seconds": seconds, "jobs_per_s": jobs / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("TASKRUNNER_DSN") or DEFAULT_DSN)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=50_000, help="jobs to drain")
    parser.add_argument("--modes", default="off,on", help="comma-separated: off, on")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        import uvloop

        uvloop.run(worker_main(args.dsn, args.schema, args.worker == "on"))
        return 0
    modes = [m for m in MODES if m in args.modes.split(",")]
    if not modes:
        parser.error(f"--modes: choose from {', '.join(MODES)}")

    runs: list[dict[str, Any]] = []
    for rep in range(args.reps):
        # Interleaved, and in turn first, so drifts of the machine hit both alike.
        for mode in modes if rep % 2 == 0 else modes[::-1]:
            result = run_once(args.dsn, args.jobs, mode) | {"rep": rep + 1}
            runs.append(result)
            print(
                f"rep {rep + 1}  tracing {mode:3}  {result['seconds']:6.2f}s  "
                f"{result['jobs_per_s']:8.0f} jobs/s",
                flush=True,
            )
    medians = {m: statistics.median(r["jobs_per_s"] for r in runs if r["mode"] == m) for m in modes}
    summary: dict[str, Any] = {"median_jobs_per_s": medians}
    line = ", ".join(f"tracing {m}: {v:.0f} jobs/s" for m, v in medians.items())
    if len(modes) == 2:
        # A rep's two runs are next to each other in time: their ratio is the least
        # disturbed by the machine's drift from minute to minute.
        by = {(r["rep"], r["mode"]): r["jobs_per_s"] for r in runs}
        pairs = [by[(rep, "on")] / by[(rep, "off")] for rep in range(1, args.reps + 1)]
        summary |= {"ratios_within_reps": pairs, "median_ratio": statistics.median(pairs)}
        line += f"; on/off within each rep: {', '.join(f'{p:.3f}' for p in pairs)}"
        line += f" (median {statistics.median(pairs):.3f}, target >= 0.8)"
    print("median drain: " + line)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "jobs": args.jobs,
                "concurrency": CONCURRENCY,
                "reps": args.reps,
                "runs": runs,
                **summary,
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
