"""What every handler of every system calls: the same few microseconds for all of them.

Each job carries two numbers: `seq` (which job it is, to catch lost and doubled runs) and
`t` (the producer's `time.time()` when it enqueued it). An async handler calls `hit(seq,
t)`, which appends `(seq, t, time.time())` to a list in the worker process; the worker
writes the list out when its system's worker loop has returned. A CPU-bound handler runs
in a pool process, so `burn` appends one line per call to the file named by
$BENCH_RECORD_FILE instead (O_APPEND, one write per call).

`stop_at`: in the runs that keep the worker going (latency, steady, backlog) the worker
sends itself SIGTERM once the expected number of handler calls has started, and each
system's own SIGTERM handling stops it gracefully (finish what runs, ack, exit).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import sys
import time

RECORD_FILE_ENV = "BENCH_RECORD_FILE"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, float, float]] = []
        self.stop_at: int | None = None
        self.t_ready: float | None = None
        self.t_return: float | None = None
        self._stopping = False

    def hit(self, seq: int, t: float) -> None:
        self.calls.append((seq, t, time.time()))
        if self.stop_at is not None and not self._stopping and len(self.calls) >= self.stop_at:
            self._stopping = True
            os.kill(os.getpid(), signal.SIGTERM)

    def ready(self) -> None:
        """Called by an adapter right before it enters its system's worker loop."""
        if self.t_ready is None:
            self.t_ready = time.time()
            print("READY", flush=True)

    def returned(self) -> None:
        """Called by an adapter as soon as its system's worker loop has returned."""
        if self.t_return is None:
            self.t_return = time.time()


RECORDER = Recorder()


def hit(seq: int, t: float) -> None:
    RECORDER.hit(seq, t)


_fd: int | None = None


def hit_file(seq: int, t: float, t_start: float, t_end: float) -> None:
    global _fd
    if _fd is None:
        path = os.environ[RECORD_FILE_ENV]
        _fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(_fd, f"{seq} {t!r} {t_start!r} {t_end!r} {os.getpid()}\n".encode())


def spin(iters: int) -> int:
    """Pure-Python CPU work: `iters` rounds of integer arithmetic."""
    x = 0
    for i in range(iters):
        x = (x + i * i) % 1_000_003
    return x


def burn(seq: int, t: float, iters: int) -> int:
    """The CPU-bound job: ~50 ms of `spin`, recorded to the shared file."""
    t_start = time.time()
    x = spin(iters)
    hit_file(seq, t, t_start, time.time())
    return x


def calibrate(target_ms: float) -> int:
    """Iterations of `spin` that take about target_ms on this machine (best of 5)."""
    n = 20_000
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        spin(n)
        best = min(best, time.perf_counter() - t0)
    return max(1, int(n * (target_ms / 1000.0) / best))


if __name__ == "__main__":  # pragma: no cover - manual check
    iters = calibrate(50.0)
    t0 = time.perf_counter()
    spin(iters)
    sys.stdout.write(f"{iters} iterations: {(time.perf_counter() - t0) * 1000:.1f} ms\n")


# -- the handlers of the systems without a process executor of their own ----------------

_POOL: concurrent.futures.ProcessPoolExecutor | None = None


def process_pool() -> concurrent.futures.ProcessPoolExecutor:
    """One pool per worker process, as wide as the machine (started on first use)."""
    global _POOL
    if _POOL is None:
        _POOL = concurrent.futures.ProcessPoolExecutor(max_workers=os.cpu_count() or 1)
    return _POOL


def shutdown_process_pool() -> None:
    if _POOL is not None:
        _POOL.shutdown()


async def noop(seq: int, t: float) -> None:
    hit(seq, t)


async def burn_in_pool(seq: int, t: float, iters: int) -> None:
    """The CPU job from an async handler: awaited in the process pool."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(process_pool(), burn, seq, t, iters)
