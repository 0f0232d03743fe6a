"""CPU-bound tasks on executor="process", with a hard timeout.

    python examples/process_executor.py

An async worker runs `async` handlers on its event loop and plain functions in threads;
neither suits pure-Python CPU work (the GIL, and a busy loop blocks the event loop).
`@runner.task(executor="process")` runs the handler in a pool of child processes:

* several CPU-bound jobs run in parallel, on as many cores as there are;
* the worker's event loop stays responsive meanwhile (a ticker proves it below);
* `timeout=` is enforced by killing the child: a runaway job cannot hold a slot forever.
  Its attempt fails with JobTimeout (here `max_attempts=1`, so the job ends failed).

The children are started with "spawn": each imports this file again, so the tasks must
be module-level functions and everything else must stay under `if __name__ == "__main__":`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time

from taskrunner import TaskRunner

runner = TaskRunner(schema="taskrunner_process_example")

CRUNCH_N = 4_000_000  # about 0.3 s of pure-Python work on a typical machine


@runner.task(executor="process")
def crunch(n: int) -> dict:
    """CPU-bound: runs in a child process."""
    started = time.process_time()
    total = sum(i * i % 7 for i in range(n))
    return {"total": total, "pid": os.getpid(), "cpu_seconds": time.process_time() - started}


@runner.task(executor="process", timeout=1.0, max_attempts=1)
def runaway(seconds: float) -> str:
    """Spins far longer than its 1 s timeout; the worker kills its process."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass
    return "never gets here"


async def ticker(stop: asyncio.Event, every: float = 0.05) -> tuple[int, float]:
    """Count ticks and the longest gap between them while the worker runs."""
    ticks, longest = 0, 0.0
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(every)
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
        ticks += 1
    return ticks, longest


async def main() -> None:
    async with runner:
        print(f"Database: {runner.target.redacted} (from {runner.target.source})")
        print(f"CPU cores: {os.cpu_count()}")
        await runner.job_queue.clear()

        crunch_jobs = await runner.enqueue_many(crunch, [CRUNCH_N] * 4)
        slow = await runaway.enqueue(30.0)
        ids = ", ".join(str(j.id) for j in crunch_jobs)
        print(f"Enqueued 4 x crunch({CRUNCH_N:_}) (jobs {ids})")
        print(f"     and runaway(30.0) with timeout=1s, max_attempts=1 (job {slow.id})")

        stop = asyncio.Event()
        ticks = asyncio.create_task(ticker(stop))
        started = time.perf_counter()
        # process_pool_size: children kept for process tasks (default: min(concurrency,
        # cores)); 5 lets all five jobs start at once, even on a small machine.
        await runner.run_worker(
            concurrency=8, stop_when_idle=True, poll_interval=0.1, process_pool_size=5
        )
        elapsed = time.perf_counter() - started
        stop.set()
        tick_count, longest_gap = await ticks

        print(f"\nWorker finished in {elapsed:.2f}s")
        done_jobs = [await runner.get_job(j.id) for j in crunch_jobs]
        cpu_total = 0.0
        for done in done_jobs:
            assert done is not None
            assert done.started_at is not None
            assert done.finished_at is not None
            result = done.result
            cpu_total += result["cpu_seconds"]
            ran = (done.finished_at - done.started_at).total_seconds()
            print(
                f"  crunch  job {done.id}: {done.status}, pid {result['pid']}, "
                f"{result['cpu_seconds']:.2f}s CPU, {ran:.2f}s from claim to finish"
            )
        window = (
            max(j.finished_at for j in done_jobs if j and j.finished_at)
            - min(j.started_at for j in done_jobs if j and j.started_at)
        ).total_seconds()
        pids = {j.result["pid"] for j in done_jobs if j}
        print(
            f"  -> {cpu_total:.2f}s of CPU work in {len(pids)} processes, all done {window:.2f}s "
            "after the first was claimed (starting the processes included)"
        )

        failed = await runner.get_job(slow.id)
        assert failed is not None
        first_line = (failed.last_error or "").splitlines()[0]
        print(
            f"  runaway job {failed.id}: {failed.status} after {failed.attempts} attempt: "
            f"{first_line}"
        )

        print(
            f"\nEvent loop: {tick_count} ticks of 50 ms during the run, longest gap between "
            f"ticks {longest_gap * 1000:.0f} ms -- the CPU work never blocked it."
        )
        assert failed.status == "failed"
        assert all(j is not None and j.status == "succeeded" for j in done_jobs)


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.WARNING, format="  log: %(levelname)s %(message)s", stream=sys.stdout
    )
    asyncio.run(main())
