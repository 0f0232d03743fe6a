"""`python -m benchmarks.chaos [--quick]`: the chaos suite. See benchmarks/README.md.

Starts a private PostgreSQL, runs the same jobs twice through K worker processes (first
without faults, for the throughput reference, then with every fault), checks the
history of the faulty run (checker.py), prints one verdict line and writes JSON under
benchmarks/results/. Exit status 1 when an invariant breaks, 2 when the suite itself
could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.chaos import faults as F
from benchmarks.chaos.app import make_runner
from benchmarks.chaos.checker import Fault, JobRow, Report, check
from benchmarks.chaos.history import read_history
from benchmarks.chaos.server import PrivateServer

RESULTS = Path(__file__).resolve().parents[1] / "results"


@dataclass
class Config:
    jobs: int
    workers: int
    concurrency: int
    lease: float
    kills: int
    stops: int
    restarts: list[str]
    partitions: int
    terminates: int
    blocks: int
    gap: float
    keyed_every: int = 5
    long_fraction: float = 0.01
    seed: int = 1

    @property
    def fault_seconds(self) -> float:
        return self.lease + 1.0  # stops and partitions outlast a lease


QUICK = Config(jobs=3000, workers=4, concurrency=8, lease=3.0, kills=6, stops=1,
               restarts=["fast", "immediate"], partitions=1, terminates=1, blocks=1, gap=2.5)
FULL = Config(jobs=100_000, workers=6, concurrency=16, lease=3.0, kills=100, stops=3,
              restarts=["fast", "immediate", "immediate"], partitions=3, terminates=3,
              blocks=3, gap=5.0)


def plan(cfg: Config, rng: random.Random) -> list[tuple[str, str]]:
    steps = ([("stop", "")] * cfg.stops + [("partition", "")] * cfg.partitions
             + [("restart", m) for m in cfg.restarts] + [("terminate", "")] * cfg.terminates
             + [("block", "")] * cfg.blocks)
    rng.shuffle(steps)
    return steps


def plan_seconds(cfg: Config) -> float:
    busy = (cfg.stops + cfg.partitions) * cfg.fault_seconds + 2.0 * len(cfg.restarts)
    steps = cfg.stops + cfg.partitions + len(cfg.restarts) + cfg.terminates + cfg.blocks
    return 2.0 + busy + steps * cfg.gap


def job_durations(cfg: Config, rng: random.Random) -> list[int]:
    """Milliseconds per job, so that the fault plan spans the first three quarters of the
    fault-free run: the faults always meet running work, and the run ends with a drain.
    A few jobs outlive several leases."""
    slots = cfg.workers * cfg.concurrency
    budget_ms = (plan_seconds(cfg) / 0.75 + 2.0) * slots * 1000 * 0.8
    long_ms = int(cfg.lease * 2.5 * 1000)
    n_long = int(cfg.jobs * cfg.long_fraction)
    mean = max(0.0, (budget_ms - n_long * long_ms) / max(1, cfg.jobs - n_long))
    durations = [int(rng.uniform(0, 2 * mean)) for _ in range(cfg.jobs)]
    for i in rng.sample(range(cfg.jobs), n_long):
        durations[i] = long_ms
    return durations


# ---- one run ------------------------------------------------------------------------


@dataclass
class RunResult:
    schema: str
    seconds: float
    rows: dict[int, JobRow]
    expected: list[int]
    key_jobs: dict[str, set[int]]
    log: F.FaultLog
    history: Path
    run_end: float
    dedup_ok: bool


async def connect(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, timeout=5,
                                 server_settings={"application_name": F.HARNESS_APP_NAME})


async def enqueue(dsn: str, schema: str, cfg: Config, durations: list[int]
                  ) -> tuple[list[int], dict[str, set[int]], bool]:
    runner = make_runner(dsn, schema, cfg.lease)
    await runner.open()
    expected: list[int] = []
    key_jobs: dict[str, set[int]] = {}
    dedup_ok = True
    try:
        for lo in range(0, cfg.jobs, 1000):
            idx = range(lo, min(cfg.jobs, lo + 1000))
            keys = [f"key-{i}" if i % cfg.keyed_every == 0 else None for i in idx]
            jobs = await runner.enqueue_many("chaos.work", [(i, durations[i]) for i in idx],
                                             idempotency_keys=keys)
            expected.extend(j.id for j in jobs)
            for k, j in zip(keys, jobs, strict=True):
                if k is not None:
                    key_jobs[k] = {j.id}
            # The same keyed calls again, as a client retrying would: no new job.
            again = [i for i in idx if i % (2 * cfg.keyed_every) == 0]
            dups = await runner.enqueue_many("chaos.work", [(i, durations[i]) for i in again],
                                             idempotency_keys=[f"key-{i}" for i in again])
            for i, j in zip(again, dups, strict=True):
                key_jobs[f"key-{i}"].add(j.id)
                dedup_ok = dedup_ok and j.deduplicated
    finally:
        await runner.close()
    return expected, key_jobs, dedup_ok


async def enqueue_blocker(dsn: str, schema: str, cfg: Config, blocking: bool) -> int:
    """A job that blocks its worker's event loop for 0.6 of a lease (without `blocking`,
    one that waits as long without blocking, for the no-fault run)."""
    runner = make_runner(dsn, schema, cfg.lease)
    await runner.open()
    ms = int(cfg.lease * 0.6 * 1000)
    try:
        job = await (runner.enqueue("chaos.block", ms) if blocking
                     else runner.enqueue("chaos.work", -2, ms))
    finally:
        await runner.close()
    return job.id


async def enqueue_burst(dsn: str, schema: str, cfg: Config, tag: str
                        ) -> tuple[list[int], dict[str, set[int]]]:
    """Keyed long jobs at a high priority, claimed at once: a crash right after finds
    fresh claims under running handlers."""
    runner = make_runner(dsn, schema, cfg.lease)
    await runner.open()
    n = cfg.workers * cfg.concurrency // 2
    ms = int(cfg.lease * 2 * 1000)
    keys = [f"{tag}-{i}" for i in range(n)]
    try:
        jobs = await runner.enqueue_many("chaos.work", [(-1, ms)] * n, idempotency_keys=keys,
                                         priority=10)
    finally:
        await runner.close()
    return [j.id for j in jobs], {k: {j.id} for k, j in zip(keys, jobs, strict=True)}


async def final_count(dsn: str, schema: str) -> int | None:
    try:
        conn = await connect(dsn)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return None
    try:
        n: int = await conn.fetchval(
            f'SELECT count(*) FROM "{schema}".jobs'
            " WHERE status IN ('succeeded', 'failed', 'cancelled')")
        return n
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return None
    finally:
        await conn.close()


async def read_rows(dsn: str, schema: str) -> dict[int, JobRow]:
    conn = await connect(dsn)
    try:
        offset = time.time() - time.monotonic()
        records = await conn.fetch(
            f"SELECT id, status::text, attempts, result, idempotency_key,"
            f' extract(epoch FROM finished_at)::float8 AS fin FROM "{schema}".jobs')
    finally:
        await conn.close()
    return {
        r["id"]: JobRow(r["id"], r["status"], r["attempts"],
                        json.loads(r["result"]) if r["result"] is not None else None,
                        r["idempotency_key"], r["fin"] - offset if r["fin"] else None)
        for r in records
    }


async def run_once(server: PrivateServer, cfg: Config, *, faults: bool, work: Path,
                   drain_timeout: float) -> RunResult:
    name = "faults" if faults else "nofault"
    schema = f"chaos_{name}"
    rng = random.Random(cfg.seed)
    durations = job_durations(cfg, rng)
    expected, key_jobs, dedup_ok = await enqueue(server.dsn, schema, cfg, durations)
    history, logs = work / name / "history", work / name / "logs"
    history.mkdir(parents=True)
    logs.mkdir(parents=True)
    log = F.FaultLog()
    proxy = F.Proxy(server.port, cfg.workers)
    fleet = F.Fleet(dsns=[f"postgresql://postgres@127.0.0.1:{p}/postgres" for p in proxy.ports],
                    schema=schema, history=history, logs=logs, lease=cfg.lease,
                    concurrency=cfg.concurrency, log=log)
    try:
        began = time.monotonic()
        fleet.start()
        done = asyncio.Event()

        async def reaper() -> None:
            while not done.is_set():
                fleet.reap()
                await asyncio.sleep(0.1)

        async def killer() -> None:
            # Kills at random moments of the plan (never after it: then the run drains).
            kill_rng = random.Random(cfg.seed + 1)
            moments = sorted(kill_rng.uniform(1.0, plan_seconds(cfg)) for _ in range(cfg.kills))
            for moment in moments:
                await asyncio.sleep(max(0.0, began + moment - time.monotonic()))
                await F.kill_worker(fleet, kill_rng)

        async def planner() -> None:
            # The no-fault run walks the same plan and enqueues the same extra jobs at
            # the same times, so both runs do the same work; it only injects nothing.
            await asyncio.sleep(2.0)
            for step, (kind, arg) in enumerate(plan(cfg, rng)):
                if kind in ("stop", "partition") and not faults:
                    await asyncio.sleep(cfg.fault_seconds)
                elif kind == "stop":
                    await F.freeze_worker(fleet, rng, cfg.fault_seconds)
                elif kind == "partition":
                    await F.partition_worker(fleet, proxy, rng, cfg.fault_seconds)
                elif kind == "restart":
                    if arg == "immediate":
                        ids, keyed = await enqueue_burst(server.dsn, schema, cfg,
                                                         f"burst-{step}")
                        expected.extend(ids)
                        key_jobs.update(keyed)
                        await asyncio.sleep(0.3)
                    if faults:
                        await F.restart_server(fleet, server, arg)
                    else:
                        await asyncio.sleep(1.0)
                elif kind == "terminate" and faults:
                    await F.terminate_backends(fleet, server.dsn)
                elif kind == "block":
                    t = time.monotonic()
                    expected.append(await enqueue_blocker(server.dsn, schema, cfg, faults))
                    log.faults.append(Fault("block", t, t, [], "event loop blocked "
                                              f"{cfg.lease * 0.6:.1f}s by a handler"))
                await asyncio.sleep(cfg.gap)

        reaping = asyncio.create_task(reaper())
        injecting = [asyncio.create_task(planner())]
        if faults:
            injecting.append(asyncio.create_task(killer()))
        finished_at = None
        while True:
            await asyncio.sleep(0.25)
            injected = all(t.done() for t in injecting)
            for t in injecting:
                if t.done() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            n = await final_count(server.dsn, schema)
            if n is not None and n >= len(expected) and injected:
                finished_at = time.monotonic()
                break
            if injected and time.monotonic() - began > plan_seconds(cfg) * 3 + drain_timeout:
                break
        done.set()
        await reaping
        run_end = time.monotonic()
        await asyncio.to_thread(fleet.stop_all)
    finally:
        fleet.kill_all()
        proxy.close()
    rows = await read_rows(server.dsn, schema)
    dump = {"rows": [asdict(r) for r in rows.values()], "expected": expected,
            "key_jobs": {k: sorted(v) for k, v in key_jobs.items()},
            "processes": [asdict(p) for p in log.processes.values()],
            "freezes": [asdict(f) for f in log.freezes], "faults": [asdict(f) for f in log.faults],
            "run_end": run_end}
    (work / name / "run.json").write_text(json.dumps(dump))
    seconds = (finished_at or run_end) - began
    return RunResult(schema, seconds, rows, expected, key_jobs, log, history, run_end, dedup_ok)


# ---- verdict ------------------------------------------------------------------------


def verdict_line(report: Report, throughput: float, cfg: Config) -> str:
    word = "PASS" if report.passed else "FAIL"
    target_recovery = cfg.lease + 2.0
    missed = []
    if report.max_recovery > target_recovery:
        missed.append("recovery")
    if round(throughput, 2) < 0.9:
        missed.append("throughput")
    targets = "met" if not missed else "missed(" + ",".join(missed) + ")"
    return (f"chaos: {word} jobs={report.jobs} lost={len(report.lost)} "
            f"double_runs={len(report.double_runs)} stale_acks={len(report.stale_acks)} "
            f"dup_effects={len(report.dup_effects)} stuck={len(report.stuck)} "
            f"crashes={len(report.crashes)} max_recovery={report.max_recovery:.1f}s "
            f"throughput={throughput:.2f}x targets={targets}")


async def amain(args: argparse.Namespace) -> int:
    cfg = QUICK if args.quick else FULL
    if args.jobs:
        cfg.jobs = args.jobs
    if args.kills is not None:
        cfg.kills = args.kills
    cfg.seed = args.seed
    work = Path(tempfile.mkdtemp(prefix="taskrunner-chaos-"))
    server = PrivateServer()
    t0 = time.monotonic()
    try:
        server.init()
        server.start()
        drain = cfg.lease * 5 + 30
        base = await run_once(server, cfg, faults=False, work=work, drain_timeout=drain)
        print(f"chaos: no-fault run: {len(base.expected)} jobs in {base.seconds:.1f}s "
              f"({len(base.expected) / base.seconds:.0f} jobs/s)", flush=True)
        run = await run_once(server, cfg, faults=True, work=work, drain_timeout=drain)
        print(f"chaos: fault run: {len(run.expected)} jobs in {run.seconds:.1f}s, "
              f"{len(run.log.faults)} faults, {len(run.log.processes)} worker processes",
              flush=True)
        executions = read_history(run.history)
        report = check(
            expected_jobs=run.expected, rows=run.rows, executions=executions,
            processes=run.log.processes, freezes=run.log.freezes, faults=run.log.faults,
            key_jobs=run.key_jobs, run_end=run.run_end,
            reference_rate=len(base.expected) / base.seconds,
        )
        if not run.dedup_ok:
            report.dup_effects.append({"key": "*", "reason": "a duplicate enqueue was not "
                                       "deduplicated"})
        throughput = base.seconds / run.seconds
        line = verdict_line(report, throughput, cfg)
        shutil.copy(server.log, work / "server.log")
    except BaseException:
        print(f"chaos: ERROR (files kept in {work})", file=sys.stderr)
        raise
    finally:
        server.cleanup()
    out = Path(args.output) if args.output else RESULTS / ("chaos-quick.json" if args.quick
                                                           else "chaos.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    by_kind: dict[str, list[float]] = {}
    for r in report.recoveries:
        by_kind.setdefault(r["kind"], []).append(r["recovery"])
    doc: dict[str, Any] = {
        "verdict": line,
        "passed": report.passed,
        "config": asdict(cfg),
        "no_fault": {"jobs": len(base.expected), "seconds": round(base.seconds, 2)},
        "faults": {"jobs": len(run.expected), "seconds": round(run.seconds, 2),
                   "executions": len(executions), "worker_processes": len(run.log.processes),
                   "injected": {k: len(v) for k, v in by_kind.items()},
                   "max_recovery_by_kind": {k: max(v) for k, v in by_kind.items()}},
        "throughput_ratio": round(throughput, 3),
        "lost": report.lost[:50], "stuck": report.stuck[:50],
        "double_runs": report.double_runs[:50], "stale_acks": report.stale_acks[:50],
        "dup_effects": report.dup_effects[:50], "crashes": report.crashes,
        "recoveries": report.recoveries,
        "python": platform.python_version(), "platform": platform.platform(),
        "suite_seconds": round(time.monotonic() - t0, 1),
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    if report.passed and not args.keep_files:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"chaos: history and worker logs kept in {work}", file=sys.stderr)
    print(line, flush=True)
    return 0 if report.passed else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few thousand jobs, < 2 min")
    parser.add_argument("--jobs", type=int, default=None, help="override the job count")
    parser.add_argument("--kills", type=int, default=None, help="override the SIGKILL count")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", default=None, help="JSON path")
    parser.add_argument("--keep-files", action="store_true", help="keep history and logs")
    args = parser.parse_args()
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the suite itself failed: not a verdict
        traceback.print_exc()
        print(f"chaos: ERROR {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
