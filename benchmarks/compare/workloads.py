"""The seven workloads, run the same way for every system.

Each function takes an `Env` (sizes, repetition, where to put files) and a system name,
creates its own fresh database(s) through `Env.fresh`, and returns a flat dict of
metrics. Anything short of the expected counts raises `Failure`: a short count is a
failure, not a number.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from benchmarks.compare import adapters, dbutil, record
from benchmarks.compare.adapters.base import Adapter
from benchmarks.compare.config import Sizes

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 90.0
SETTLE_IDLE_S = 1.0  # idle time given to a fresh worker before a latency run
STEADY_MAX_IN_FLIGHT = 64  # producer-side cap on concurrent single enqueues


class Failure(Exception):
    """The run did not do what it had to (short count, timeout, crash)."""


@dataclasses.dataclass
class Env:
    admin_dsn: str
    sizes: Sizes
    rep: int
    workdir: Path
    keep_db: bool = False
    cpu_iters: int = 0
    log: Callable[[str], None] = print

    @contextlib.asynccontextmanager
    async def fresh(self, system: str, tag: str) -> AsyncIterator[tuple[Adapter, str]]:
        """A new database bench_<system>_r<rep>_<tag> with the system's schema in it."""
        dbname = dbutil.safe_name(f"bench_{system}_r{self.rep}_{tag}")
        adapter = adapters.load(system, self.sizes.concurrency)
        async with dbutil.fresh_database(self.admin_dsn, dbname, keep=self.keep_db) as dsn:
            await adapter.install(dsn)
            yield adapter, dsn


# -- the worker subprocess -------------------------------------------------------------


class WorkerProcess:
    def __init__(self, env: Env, system: str, dsn: str, tag: str) -> None:
        self.env = env
        self.system = system
        self.dsn = dsn
        stem = dbutil.safe_name(f"{system}_r{env.rep}_{tag}")
        self.out_path = env.workdir / f"{stem}.out.json"
        self.log_path = env.workdir / f"{stem}.worker.log"
        self.record_path = env.workdir / f"{stem}.calls.txt"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, *, drain: bool, stop_at: int | None) -> None:
        for p in (self.out_path, self.record_path):
            p.unlink(missing_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.compare.worker",
            "--system",
            self.system,
            "--dsn",
            self.dsn,
            "--out",
            str(self.out_path),
            "--concurrency",
            str(self.env.sizes.concurrency),
        ]
        if drain:
            cmd.append("--drain")
        if stop_at is not None:
            cmd += ["--stop-at", str(stop_at)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env[record.RECORD_FILE_ENV] = str(self.record_path)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()
        self.proc = await asyncio.create_subprocess_exec(
            *cmd,
            cwd=str(REPO_ROOT),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
        )
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                while True:
                    line = await self.proc.stdout.readline()
                    if not line:
                        await self.proc.wait()
                        raise Failure(f"worker exited before READY{self._tail()}")
                    if line.strip() == b"READY":
                        break
        except TimeoutError:
            await self.kill()
            raise Failure(f"worker not READY after {READY_TIMEOUT_S:g} s{self._tail()}") from None

    async def wait(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None
        try:
            async with asyncio.timeout(timeout):
                await self.proc.wait()
        except TimeoutError:
            await self.kill()
            raise Failure(
                f"worker still running after {timeout:.0f} s (killed){self._tail()}"
            ) from None
        finally:
            self._log.close()
        if not self.out_path.exists():
            raise Failure(f"worker exited {self.proc.returncode} without output{self._tail()}")
        out: dict[str, Any] = json.loads(self.out_path.read_text())
        if out.get("error") or self.proc.returncode != 0:
            raise Failure(f"worker failed (exit {self.proc.returncode}){self._tail()}")
        return out

    async def kill(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(10):
                await self.proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()

    def _tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return ("\n    " + "\n    ".join(text[-lines:])) if text else ""

    def file_calls(self) -> list[tuple[int, float, float, float, int]]:
        """Calls written by process-pool handlers (record.hit_file)."""
        if not self.record_path.exists():
            return []
        calls = []
        for line in self.record_path.read_text().splitlines():
            seq, t, t0, t1, pid = line.split()
            calls.append((int(seq), float(t), float(t0), float(t1), int(pid)))
        return calls


# -- helpers -----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100.0 * len(ordered)) - 1))
    return ordered[k]


def check_calls(
    calls: Iterable[tuple[Any, ...]], expected: set[int], *, exact: bool = True
) -> list[int]:
    """The seqs the handlers saw; fail on a doubled run, a foreign seq or a missing one."""
    seqs = [int(c[0]) for c in calls]
    seen = set(seqs)
    if len(seen) != len(seqs):
        raise Failure(f"{len(seqs) - len(seen)} handler calls ran a job twice")
    foreign = seen - expected
    if foreign:
        raise Failure(f"{len(foreign)} handler calls for jobs never enqueued")
    if exact and seen != expected:
        raise Failure(f"short count: {len(seen)} of {len(expected)} jobs ran")
    return seqs


async def check_counts(
    adapter: Adapter, dsn: str, *, finished: int, pending: int | None = None
) -> dict[str, int]:
    counts = await adapter.counts(dsn)
    if counts["finished"] != finished:
        raise Failure(f"short count: {counts['finished']} finished rows, expected {finished}")
    if pending is not None and counts["pending"] != pending:
        raise Failure(f"{counts['pending']} jobs still pending, expected {pending}")
    return counts


async def _timed_gather(coros: Iterable[Awaitable[None]]) -> float:
    t0 = time.perf_counter()
    await asyncio.gather(*coros)
    return time.perf_counter() - t0


# -- 1. enqueue single -------------------------------------------------------------------


async def enqueue_single(env: Env, system: str) -> dict[str, Any]:
    s = env.sizes
    n, warm = s.enqueue_single_jobs, s.warmup_jobs
    async with env.fresh(system, "enqueue_single") as (adapter, dsn):
        await adapter.open_producer(dsn)
        try:
            await asyncio.gather(
                *(adapter.enqueue_one("noop", (-1 - i, time.time())) for i in range(warm))
            )
            seqs = iter(range(n))

            async def producer() -> None:
                for seq in seqs:
                    await adapter.enqueue_one("noop", (seq, time.time()))

            elapsed = await _timed_gather(producer() for _ in range(s.concurrency))
        finally:
            await adapter.close_producer()
        await check_counts(adapter, dsn, finished=0, pending=n + warm)
    return {"jobs_per_s": n / elapsed, "seconds": elapsed, "jobs": n}


# -- 2. enqueue batch --------------------------------------------------------------------


async def enqueue_batch(env: Env, system: str) -> dict[str, Any]:
    s = env.sizes
    n, chunk, warm = s.enqueue_batch_jobs, s.enqueue_batch_chunk, s.warmup_jobs
    async with env.fresh(system, "enqueue_batch") as (adapter, dsn):
        await adapter.open_producer(dsn)
        try:
            await adapter.enqueue_batch("noop", [(-1 - i, time.time()) for i in range(warm)])
            t0 = time.perf_counter()
            for start in range(0, n, chunk):
                now = time.time()
                await adapter.enqueue_batch(
                    "noop", [(seq, now) for seq in range(start, min(n, start + chunk))]
                )
            elapsed = time.perf_counter() - t0
        finally:
            await adapter.close_producer()
        await check_counts(adapter, dsn, finished=0, pending=n + warm)
    return {"jobs_per_s": n / elapsed, "seconds": elapsed, "jobs": n, "chunk": chunk}


# -- 3. drain ----------------------------------------------------------------------------


async def _prefill(adapter: Adapter, dsn: str, env: Env, n: int) -> None:
    await adapter.open_producer(dsn)
    try:
        await adapter.bulk_fill("noop", 0, n, env.sizes.fill_chunk)
    finally:
        await adapter.close_producer()
    await dbutil.settle(dsn)


def _span_rates(calls: list[list[float]], t_return: float, n: int) -> dict[str, float]:
    starts = sorted(c[2] for c in calls)
    wall = t_return - starts[0]
    span = starts[-1] - starts[0]
    return {
        "jobs_per_s": n / wall,
        "seconds": wall,
        "handler_span_per_s": (n - 1) / span if span > 0 else math.nan,
    }


async def drain(env: Env, system: str) -> dict[str, Any]:
    n = env.sizes.drain_jobs
    async with env.fresh(system, "drain") as (adapter, dsn):
        await _prefill(adapter, dsn, env, n)
        worker = WorkerProcess(env, system, dsn, "drain")
        await worker.start(drain=True, stop_at=None)
        out = await worker.wait(timeout=60 + n / 50)
        check_calls(out["calls"], set(range(n)))
        await check_counts(adapter, dsn, finished=n, pending=0)
    return {**_span_rates(out["calls"], out["t_return"], n), "jobs": n}


# -- 4. latency --------------------------------------------------------------------------


async def _paced(
    adapter: Adapter, first: int, count: int, interval: float
) -> list[asyncio.Task[None]]:
    """One single enqueue every `interval` s; t = time.time() right before the call."""
    tasks: list[asyncio.Task[None]] = []
    t0 = time.time()
    for i in range(count):
        delay = t0 + i * interval - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(adapter.enqueue_one("noop", (first + i, time.time()))))
    await asyncio.gather(*tasks)
    return tasks


def _latency_stats(calls: list[list[float]], prefix: str = "") -> dict[str, float]:
    lat = [(c[2] - c[1]) * 1000.0 for c in calls if c[0] >= 0]
    return {
        f"{prefix}p50_ms": percentile(lat, 50),
        f"{prefix}p95_ms": percentile(lat, 95),
        f"{prefix}p99_ms": percentile(lat, 99),
        f"{prefix}max_ms": max(lat),
        f"{prefix}mean_ms": sum(lat) / len(lat),
    }


async def latency(env: Env, system: str) -> dict[str, Any]:
    s = env.sizes
    n, warm = s.latency_jobs, s.warmup_jobs
    async with env.fresh(system, "latency") as (adapter, dsn):
        worker = WorkerProcess(env, system, dsn, "latency")
        await worker.start(drain=False, stop_at=n + warm)
        try:
            await adapter.open_producer(dsn)
            try:
                await asyncio.sleep(SETTLE_IDLE_S)
                await _paced(adapter, -warm, warm, s.latency_interval_s)  # seqs -warm..-1
                await asyncio.sleep(0.5)
                await _paced(adapter, 0, n, s.latency_interval_s)
            finally:
                await adapter.close_producer()
            out = await worker.wait(timeout=60 + n * s.latency_interval_s + n / 50)
        finally:
            await worker.kill()
        check_calls(out["calls"], set(range(-warm, n)))
        await check_counts(adapter, dsn, finished=n + warm, pending=0)
    return {**_latency_stats(out["calls"]), "jobs": n, "interval_ms": s.latency_interval_s * 1e3}


# -- 5. steady ---------------------------------------------------------------------------


async def steady(env: Env, system: str) -> dict[str, Any]:
    s = env.sizes
    n, warm, rate = round(s.steady_rate * s.steady_seconds), s.warmup_jobs, s.steady_rate
    async with env.fresh(system, "steady") as (adapter, dsn):
        worker = WorkerProcess(env, system, dsn, "steady")
        await worker.start(drain=False, stop_at=n + warm)
        try:
            await adapter.open_producer(dsn)
            try:
                await asyncio.sleep(SETTLE_IDLE_S)
                await _paced(adapter, -warm, warm, 0.01)
                await asyncio.sleep(0.5)
                sem = asyncio.Semaphore(STEADY_MAX_IN_FLIGHT)

                async def send(seq: int, t_sched: float) -> None:
                    async with sem:
                        await adapter.enqueue_one("noop", (seq, t_sched))

                tasks: list[asyncio.Task[None]] = []
                t0 = time.time() + 0.01
                sent = 0
                while sent < n:
                    since = time.time() - t0
                    due = min(n, int(since * rate) + 1) if since >= 0 else 0
                    while sent < due:
                        # t is the scheduled arrival time: a producer that falls behind
                        # (enqueue too slow) shows up in the latency, as it would for a user.
                        tasks.append(asyncio.create_task(send(sent, t0 + sent / rate)))
                        sent += 1
                    await asyncio.sleep(0.001)
                await asyncio.gather(*tasks)
                t_produced = time.time()
            finally:
                await adapter.close_producer()
            out = await worker.wait(timeout=60 + n / 50)
        finally:
            await worker.kill()
        check_calls(out["calls"], set(range(-warm, n)))
        await check_counts(adapter, dsn, finished=n + warm, pending=0)
    last_start = max(c[2] for c in out["calls"] if c[0] >= 0)
    return {
        "achieved_per_s": n / (last_start - t0),
        "offered_per_s": n / (t_produced - t0),
        **_latency_stats(out["calls"]),
        "jobs": n,
    }


# -- 6. backlog --------------------------------------------------------------------------


async def _backlog_run(env: Env, system: str, queued: int, tag: str) -> dict[str, Any]:
    m = env.sizes.backlog_measured
    async with env.fresh(system, tag) as (adapter, dsn):
        t_fill = time.perf_counter()
        await _prefill(adapter, dsn, env, queued)
        fill_s = time.perf_counter() - t_fill
        worker = WorkerProcess(env, system, dsn, tag)
        await worker.start(drain=False, stop_at=m)
        out = await worker.wait(timeout=60 + m / 50)
        calls = out["calls"]
        check_calls(calls, set(range(queued)), exact=False)
        if len(calls) < m:
            raise Failure(f"short count: {len(calls)} of {m} jobs ran")
        await check_counts(adapter, dsn, finished=len(calls))
    rates = _span_rates(calls, out["t_return"], len(calls))
    return {
        "per_s": rates["jobs_per_s"],
        "handler_span_per_s": rates["handler_span_per_s"],
        "ran": len(calls),
        "fill_s": fill_s,
    }


async def backlog(env: Env, system: str) -> dict[str, Any]:
    s = env.sizes
    big = await _backlog_run(env, system, s.backlog_big, "backlog_big")
    small = await _backlog_run(env, system, s.backlog_small, "backlog_small")
    return {
        "big_per_s": big["per_s"],
        "small_per_s": small["per_s"],
        "big_vs_small": big["per_s"] / small["per_s"],
        "big_handler_span_per_s": big["handler_span_per_s"],
        "small_handler_span_per_s": small["handler_span_per_s"],
        "big_queued": s.backlog_big,
        "small_queued": s.backlog_small,
        "measured_jobs": s.backlog_measured,
        "big_fill_s": big["fill_s"],
    }


# -- 7. cpu ------------------------------------------------------------------------------


def serial_cpu_seconds(jobs: int, iters: int) -> float:
    """The same CPU jobs run one after the other in this process."""
    t0 = time.perf_counter()
    for _ in range(jobs):
        record.spin(iters)
    return time.perf_counter() - t0


async def cpu(env: Env, system: str) -> dict[str, Any]:
    k, iters = env.sizes.cpu_jobs, env.cpu_iters
    # The one-process reference, measured right before this system's run so that both
    # see the same load on the machine.
    serial_s = serial_cpu_seconds(k, iters)
    async with env.fresh(system, "cpu") as (adapter, dsn):
        await adapter.open_producer(dsn)
        try:
            now = time.time()
            await adapter.enqueue_batch("burn", [(i, now, iters) for i in range(k)])
        finally:
            await adapter.close_producer()
        await dbutil.settle(dsn)
        worker = WorkerProcess(env, system, dsn, "cpu")
        await worker.start(drain=True, stop_at=None)
        out = await worker.wait(timeout=60 + 4 * k * env.sizes.cpu_job_ms / 1000)
        calls = worker.file_calls()
        check_calls(calls, set(range(k)))
        await check_counts(adapter, dsn, finished=k, pending=0)
    first = min(c[2] for c in calls)
    wall = max(c[3] for c in calls) - first
    busy = sum(c[3] - c[2] for c in calls)
    return {
        "speedup": serial_s / wall,
        "seconds": wall,
        "seconds_to_worker_return": out["t_return"] - first,
        "serial_seconds": serial_s,
        "mean_job_ms": busy / k * 1000,
        "processes": len({c[4] for c in calls}),
        "jobs": k,
    }


RUNNERS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "enqueue_single": enqueue_single,
    "enqueue_batch": enqueue_batch,
    "drain": drain,
    "latency": latency,
    "steady": steady,
    "backlog": backlog,
    "cpu": cpu,
}
