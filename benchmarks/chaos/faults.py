"""The worker fleet and the faults injected into it, each logged with its times.

`Fleet` keeps K worker processes running (`taskrunner worker
benchmarks.chaos.app:runner`), one per proxy listener, notices every exit, and replaces
any worker that died. The fault functions act on it, the proxy or the server, and
append a `Fault` (and, for SIGSTOP, a `Freeze`) to the log the checker reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from benchmarks.chaos.checker import Fault, Freeze, Process
from benchmarks.chaos.server import PrivateServer

HARNESS_APP_NAME = "chaos-harness"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class FaultLog:
    faults: list[Fault] = field(default_factory=list)
    freezes: list[Freeze] = field(default_factory=list)
    processes: dict[int, Process] = field(default_factory=dict)


class Proxy:
    """The proxy process (proxy.py): one listener per worker slot."""

    def __init__(self, upstream_port: int, listeners: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.chaos.proxy", "--upstream-port",
             str(upstream_port), "--listeners", str(listeners)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )
        assert self.proc.stdout is not None
        self.ports: list[int] = json.loads(self.proc.stdout.readline())["ports"]

    def command(self, verb: str, index: int) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(f"{verb} {index}\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ok":
            raise RuntimeError("the chaos proxy did not answer")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Fleet:
    def __init__(
        self, *, dsns: list[str], schema: str, history: Path, logs: Path, lease: float,
        concurrency: int, log: FaultLog, shutdown_timeout: float = 5.0,
    ) -> None:
        self.dsns = dsns
        self.schema = schema
        self.history = history
        self.logs = logs
        self.lease = lease
        self.concurrency = concurrency
        self.log = log
        self.shutdown_timeout = shutdown_timeout
        self.slots: list[subprocess.Popen[bytes] | None] = [None] * len(dsns)
        self.every: list[subprocess.Popen[bytes]] = []  # every process ever spawned
        self.frozen: set[int] = set()
        self.spawned = 0

    def spawn(self, slot: int) -> subprocess.Popen[bytes]:
        env = dict(os.environ, CHAOS_DSN=self.dsns[slot], CHAOS_SCHEMA=self.schema,
                   CHAOS_HISTORY=str(self.history), CHAOS_LEASE=str(self.lease),
                   PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.spawned += 1
        out = (self.logs / f"worker-{self.spawned:04d}-slot{slot}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "taskrunner", "--log-level", "WARNING", "worker",
             "benchmarks.chaos.app:runner", "--concurrency", str(self.concurrency),
             "--shutdown-timeout", str(self.shutdown_timeout)],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )
        out.close()
        with contextlib.suppress(OSError):
            (self.logs / f"worker-{self.spawned:04d}-slot{slot}.log").rename(
                self.logs / f"worker-{self.spawned:04d}-slot{slot}-pid{proc.pid}.log")
        self.slots[slot] = proc
        self.every.append(proc)
        self.log.processes[proc.pid] = Process(pid=proc.pid, started=time.monotonic(), slot=slot)
        return proc

    def start(self) -> None:
        for slot in range(len(self.slots)):
            self.spawn(slot)

    def reap(self) -> None:
        """Notice exits; replace a worker that died (an unexpected crash)."""
        for slot, proc in enumerate(self.slots):
            if proc is None or proc.poll() is None:
                continue
            info = self.log.processes[proc.pid]
            if info.killed:
                continue  # kill() replaces it
            info.ended, info.exit_code = time.monotonic(), proc.returncode
            self.spawn(slot)

    def live(self) -> list[tuple[int, subprocess.Popen[bytes]]]:
        return [(i, p) for i, p in enumerate(self.slots)
                if p is not None and p.poll() is None and p.pid not in self.frozen]

    def kill(self, slot: int) -> int:
        proc = self.slots[slot]
        assert proc is not None
        info = self.log.processes[proc.pid]
        info.killed = True
        info.ended = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        info.exit_code = proc.returncode
        self.spawn(slot)
        return proc.pid

    def stop_all(self) -> None:
        """SIGTERM every worker; each must exit 0 within its shutdown bound."""
        procs = [p for p in self.slots if p is not None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_timeout + 10
        for proc in procs:
            info = self.log.processes[proc.pid]
            info.stopped_by_suite = info.ended is None
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                info.shutdown_in_time = False
                proc.kill()
                proc.wait()
            if info.stopped_by_suite:
                info.ended, info.exit_code = time.monotonic(), proc.returncode
        self.slots = [None] * len(self.slots)

    def kill_all(self) -> None:
        for proc in self.every:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                proc.wait()


# ---- faults -------------------------------------------------------------------------


async def kill_worker(fleet: Fleet, rng: random.Random) -> None:
    live = fleet.live()
    if not live:
        return
    slot, _ = rng.choice(live)
    t = time.monotonic()
    pid = fleet.kill(slot)  # on the loop: the reaper must not see it half done
    fleet.log.faults.append(Fault("kill", t, t, [pid], f"SIGKILL slot {slot}", slot))


async def freeze_worker(fleet: Fleet, rng: random.Random, seconds: float) -> None:
    live = fleet.live()
    if not live:
        return
    slot, proc = rng.choice(live)
    fleet.frozen.add(proc.pid)
    t = time.monotonic()
    os.kill(proc.pid, signal.SIGSTOP)
    freeze = Freeze(proc.pid, t, None)
    fleet.log.freezes.append(freeze)
    await asyncio.sleep(seconds)
    freeze.resumed = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGCONT)
    fleet.frozen.discard(proc.pid)
    fleet.log.faults.append(Fault("stop", t, freeze.resumed, [proc.pid],
                                  f"SIGSTOP {seconds:.1f}s slot {slot}", slot))


async def partition_worker(
    fleet: Fleet, proxy: Proxy, rng: random.Random, seconds: float
) -> None:
    live = fleet.live()
    if not live:
        return
    slot, proc = rng.choice(live)
    t = time.monotonic()
    await asyncio.to_thread(proxy.command, "block", slot)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(proxy.command, "heal", slot)
    pids = [p.pid for p in (proc, fleet.slots[slot]) if p is not None]
    fleet.log.faults.append(Fault("partition", t, time.monotonic(), sorted(set(pids)),
                                  f"black hole {seconds:.1f}s slot {slot}", slot))


async def restart_server(fleet: Fleet, server: PrivateServer, mode: str) -> None:
    t = time.monotonic()
    down = await asyncio.to_thread(server.restart, mode)
    pids = [p.pid for p in fleet.slots if p is not None]
    fleet.log.faults.append(Fault(f"restart-{mode}", t, time.monotonic(), pids,
                                  f"server down {down:.1f}s"))


async def terminate_backends(fleet: Fleet, dsn: str) -> None:
    t = time.monotonic()
    conn = await asyncpg.connect(dsn, timeout=10,
                                 server_settings={"application_name": HARNESS_APP_NAME})
    try:
        n = await conn.fetchval(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            " AND application_name <> $1", HARNESS_APP_NAME,
        )
    finally:
        await conn.close()
    pids = [p.pid for p in fleet.slots if p is not None]
    fleet.log.faults.append(Fault("terminate", t, time.monotonic(), pids,
                                  f"pg_terminate_backend of {n} connections"))
