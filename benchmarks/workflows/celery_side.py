"""The Celery side: a worker subprocess (`celery -A ... worker`), and the two workloads
sent from the harness with Celery's own canvas (`chord`, `chain`)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.workflows.config import REPO_ROOT, Sizes
from benchmarks.workflows.redis_server import RedisServer

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
BROKER_DB, BACKEND_DB = 0, 1


class Failure(Exception):
    """The run did not do what it had to (a wrong result, a timeout, a crash)."""


def worker_command(pool: str, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "benchmarks.workflows.celery_app",
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        "--loglevel=WARNING",
        # Cluster chatter between workers, of no use with one: off, as commonly advised.
        "--without-gossip",
        "--without-mingle",
    ]


def _environment(server: RedisServer) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["BENCH_CELERY_BROKER"] = server.url(BROKER_DB)
    env["BENCH_CELERY_BACKEND"] = server.url(BACKEND_DB)
    return env


@contextlib.contextmanager
def celery_environment(server: RedisServer) -> Iterator[Any]:
    """The harness's Celery app (the module), pointed at the run's redis-server."""
    from benchmarks.workflows import celery_app

    celery_app.app.conf.broker_url = server.url(BROKER_DB)
    celery_app.app.conf.result_backend = server.url(BACKEND_DB)
    try:
        yield celery_app
    finally:
        celery_app.app.close()


@contextlib.contextmanager
def celery_worker(
    server: RedisServer, sizes: Sizes, pool: str, workdir: Path, tag: str
) -> Iterator[None]:
    """A fresh `celery worker` process for one run, ready when this yields, stopped
    (warm shutdown, then killed with its children) at the end."""
    ready = workdir / f"celery_{tag}.ready"
    log_path = workdir / f"celery_{tag}.log"
    ready.unlink(missing_ok=True)
    env = _environment(server)
    env["BENCH_CELERY_READY_FILE"] = str(ready)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            worker_command(pool, sizes.concurrency),
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its pool children go with it
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while not ready.exists():
                if proc.poll() is not None:
                    raise Failure(f"celery worker exited {proc.returncode}: {_tail(log_path)}")
                if time.monotonic() > deadline:
                    raise Failure(
                        f"celery worker not ready in {READY_TIMEOUT:g} s: {_tail(log_path)}"
                    )
                time.sleep(0.05)
            yield
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(STOP_TIMEOUT)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(STOP_TIMEOUT)


def _tail(path: Path) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-8:])
    except OSError:
        return "(no log)"


def chord_run(celery_app: Any, size: int, timeout: float) -> dict[str, Any]:
    """A chord of `size` no-op tasks and a no-op body: enqueue to the body's end."""
    from celery import chord

    header = [celery_app.noop.s(i) for i in range(size)]
    t0 = time.time()
    result = chord(header)(celery_app.body.s())
    count, total, t_end = result.get(timeout=timeout)
    if (count, total) != (size, size * (size - 1) // 2):
        raise Failure(f"the chord's body got {count} results summing to {total}")
    seconds = t_end - t0
    return {"seconds": seconds, "tasks_per_s": (size + 1) / seconds, "tasks": size + 1}


def chains_run(celery_app: Any, chains: int, length: int, timeout: float) -> dict[str, Any]:
    """`chains` chains of `length` steps, all enqueued at once: steps per second from
    the first enqueue to the last step's end."""
    from celery import chain

    def one() -> Any:
        middle = [celery_app.step.s() for _ in range(length - 2)]
        return chain(celery_app.step.s(0), *middle, celery_app.last.s())

    t0 = time.time()
    results = [one().apply_async() for _ in range(chains)]
    ends = []
    for result in results:
        count, t_end = result.get(timeout=timeout)
        if count != length:
            raise Failure(f"a chain ran {count} steps, not {length}")
        ends.append(t_end)
    seconds = max(ends) - t0
    steps = chains * length
    return {"seconds": seconds, "steps_per_s": steps / seconds, "steps": steps}


def warm_up(celery_app: Any) -> None:
    """One small chord and one short chain, untimed: connections and code paths warm."""
    chord_run(celery_app, 8, timeout=READY_TIMEOUT)
    chains_run(celery_app, 2, 3, timeout=READY_TIMEOUT)
