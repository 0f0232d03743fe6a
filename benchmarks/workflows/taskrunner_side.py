"""The taskrunner side: a fresh database per run, a worker subprocess
(`benchmarks.workflows.taskrunner_worker`), and the two workloads enqueued from the
harness with taskrunner's canvas (`chord`, `chain`, `enqueue_workflow`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from benchmarks.compare import dbutil
from benchmarks.workflows.config import REPO_ROOT, Sizes
from benchmarks.workflows.taskrunner_app import make_runner

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class Failure(Exception):
    """The run did not do what it had to (a wrong result, a timeout, a crash)."""


def worker_command(concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchmarks.workflows.taskrunner_worker",
        f"--concurrency={concurrency}",
    ]


@contextlib.asynccontextmanager
async def taskrunner_worker(
    admin_dsn: str, sizes: Sizes, workdir: Path, tag: str
) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
    """A fresh database, its schema migrated, a worker process on it (ready when this
    yields), and an open producer runner with the tasks; all gone at the end."""
    dbname = dbutil.safe_name(f"bench_wf_taskrunner_{tag}")
    async with dbutil.fresh_database(admin_dsn, dbname) as dsn:
        producer, tasks = make_runner(dsn)
        async with producer:  # migrates the fresh database
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p
            )
            env["TASKRUNNER_DSN"] = dsn
            log_path = workdir / f"taskrunner_{tag}.log"
            with open(log_path, "wb") as log:
                proc = await asyncio.create_subprocess_exec(
                    *worker_command(sizes.concurrency),
                    cwd=REPO_ROOT,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                )
                try:
                    await _ready(proc, log_path)
                    yield producer, tasks
                finally:
                    await _stop(proc)


async def _ready(proc: asyncio.subprocess.Process, log_path: Path) -> None:
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            while (line := await proc.stdout.readline()) != b"READY\n":
                if not line:
                    await proc.wait()
                    raise Failure(f"worker exited {proc.returncode}: {_tail(log_path)}")
    except TimeoutError:
        raise Failure(f"worker not ready in {READY_TIMEOUT:g} s: {_tail(log_path)}") from None


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


def _tail(path: Path) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-8:])
    except OSError:
        return "(no log)"


async def chord_run(
    runner: Any, tasks: dict[str, Any], size: int, timeout: float
) -> dict[str, Any]:
    """A chord of `size` no-op tasks and a no-op body: enqueue to the body's end."""
    from taskrunner import chord

    header = [tasks["noop"].s(i) for i in range(size)]
    t0 = time.time()
    workflow = await runner.enqueue_workflow(chord(header, tasks["body"].s()))
    count, total, t_end = await runner.workflow_result(workflow.id, timeout=timeout)
    if (count, total) != (size, size * (size - 1) // 2):
        raise Failure(f"the chord's body got {count} results summing to {total}")
    seconds = t_end - t0
    return {"seconds": seconds, "tasks_per_s": (size + 1) / seconds, "tasks": size + 1}


async def chains_run(
    runner: Any, tasks: dict[str, Any], chains: int, length: int, timeout: float
) -> dict[str, Any]:
    """`chains` chains of `length` steps, all enqueued at once: steps per second from
    the first enqueue to the last step's end."""
    from taskrunner import chain

    def one() -> Any:
        middle = [tasks["step"].s() for _ in range(length - 2)]
        return chain(tasks["step"].s(0), *middle, tasks["last"].s())

    t0 = time.time()
    workflows = [await runner.enqueue_workflow(one()) for _ in range(chains)]
    ends = []
    for workflow in workflows:
        count, t_end = await runner.workflow_result(workflow.id, timeout=timeout)
        if count != length:
            raise Failure(f"a chain ran {count} steps, not {length}")
        ends.append(t_end)
    seconds = max(ends) - t0
    steps = chains * length
    return {"seconds": seconds, "steps_per_s": steps / seconds, "steps": steps}


async def warm_up(runner: Any, tasks: dict[str, Any]) -> None:
    """One small chord and one short chain, untimed: connections and code paths warm."""
    await chord_run(runner, tasks, 8, timeout=READY_TIMEOUT)
    await chains_run(runner, tasks, 2, 3, timeout=READY_TIMEOUT)
