"""taskrunner in one file: define tasks, enqueue them, run a worker, look at the results.

    python examples/quickstart.py

No configuration is needed: without $TASKRUNNER_DSN (or $DATABASE_URL) the runner
starts an embedded PostgreSQL with its data under ./.taskrunner/. To use your own
server instead:

    TASKRUNNER_DSN=postgresql://postgres@127.0.0.1:5432/postgres python examples/quickstart.py

What it shows:

* four kinds of task: async (runs on the event loop), a plain function (runs in a
  thread), a CPU-bound one on executor="process", and a flaky one that is retried;
* an idempotency key: enqueueing the same email twice gives one job;
* a request id: every job enqueued inside `request_context("signup-42")` carries it,
  and so does a job that a handler enqueues while it runs;
* a worker that runs until the queue is empty, then a table of every job.

Everything with side effects is under `if __name__ == "__main__":`, because the process
pool starts its children with "spawn", which imports this file again.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import tenacity

from taskrunner import Job, Retry, TaskRunner, current_job, request_context

# Every table of this example lives in its own schema, apart from your other runners.
runner = TaskRunner(schema="taskrunner_quickstart")


# --- tasks ------------------------------------------------------------------------------
# The default task name is "<module>.<function>": here "examples.quickstart.send_welcome_email",
# whether this file runs as a script or a worker imports it (examples.quickstart:runner).


@runner.task
async def send_welcome_email(user_id: int, template: str = "welcome") -> str:
    """An async task: it runs on the worker's event loop."""
    await asyncio.sleep(0.05)  # pretend to talk to a mail service
    # A handler may enqueue more jobs; they inherit this job's request id. The key makes
    # the follow-up exactly-once even if this email job were retried.
    await resize_image.enqueue(
        f"avatars/{user_id}.png", 128, idempotency_key=f"avatar-thumbnail-{user_id}"
    )
    return f"sent {template!r} email to user {user_id}"


@runner.task
def resize_image(path: str, width: int) -> dict:
    """A plain function: it runs in a worker thread, so blocking calls are fine."""
    time.sleep(0.05)  # pretend to resize
    return {"path": path, "width": width, "height": width * 3 // 4}


@runner.task(executor="process")
def checksum(n: int) -> int:
    """CPU-bound work runs in a child process and never blocks the event loop."""
    return sum(i * i % 7 for i in range(n))


@runner.task(retry=Retry(max_attempts=3, wait=tenacity.wait_fixed(0.2)))
async def sync_inventory(sku: str) -> str:
    """Fails on its first attempt (a simulated outage), succeeds on the second."""
    job = current_job()
    assert job is not None
    if job.attempt == 1:
        raise ConnectionError("inventory service timed out (simulated)")
    return f"{sku} in stock (attempt {job.attempt} of {job.max_attempts})"


# --- the demo ---------------------------------------------------------------------------


async def run_until_done() -> None:
    """Run a worker until no job is queued or running any more.

    `stop_when_idle=True` returns as soon as nothing is runnable *now*; a job waiting
    for its retry (0.2 s here) is not runnable yet, so start the worker again then.
    """
    while True:
        await runner.run_worker(concurrency=8, stop_when_idle=True, poll_interval=0.1)
        totals = (await runner.stats()).totals
        if totals["queued"] == 0 and totals["running"] == 0:
            return
        await asyncio.sleep(0.1)


def show(label: str, job: Job, note: str = "") -> None:
    extra = f"  ({note})" if note else ""
    print(f"   {label:<28} -> job {job.id}, deduplicated={job.deduplicated}{extra}")


def describe(job: Job) -> str:
    mark = {"succeeded": "OK  ", "failed": "FAIL", "cancelled": "CNCL"}.get(job.status, "... ")
    short = job.task.rsplit(".", 1)[-1]
    tries = f"{job.attempts} attempt" + ("" if job.attempts == 1 else "s")
    return f"  [{mark}] {short} -> {job.status} in {tries}, result: {job.result!r}"


def table(jobs: list[Job]) -> str:
    headers = ("id", "task", "status", "attempts", "request_id", "result")
    rows = [
        (str(j.id), j.task, str(j.status), str(j.attempts), j.request_id or "", repr(j.result))
        for j in jobs
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(("  " + s).rstrip() for s in out)


async def main() -> None:
    started = time.perf_counter()
    async with runner:
        print(f"Database: {runner.target.redacted} (from {runner.target.source})")
        print(f"Schema:   {runner.schema}\n")
        cleared = await runner.job_queue.clear()  # start from an empty queue on every run
        if cleared:
            print(f"(cleared {cleared} jobs left by an earlier run)\n")

        print("1. Enqueue, all inside request_context('signup-42'):")
        key = "welcome-email-42"
        with request_context("signup-42"):
            first = await send_welcome_email.enqueue(42, idempotency_key=key)
            show("send_welcome_email(42)", first, f"idempotency_key={key!r}")
            again = await send_welcome_email.enqueue(42, idempotency_key=key)
            show("the same call and key again", again)
            if again.id == first.id:
                print("   -> the same job: the second enqueue wrote nothing and will not run")
            show("checksum(2_500_000)", await checksum.enqueue(2_500_000), "executor=process")
            # Enqueue by registered name works too (here "examples.quickstart.sync_inventory"):
            flaky = await runner.enqueue(sync_inventory.name, "SKU-1")
            show("sync_inventory('SKU-1')", flaky, "fails once, then retried")
            print(f"   every job has request_id={first.request_id!r}")
        print("   send_welcome_email will enqueue resize_image itself while it runs.\n")

        print("2. Run a worker until the queue is empty (concurrency=8)...")
        t0 = time.perf_counter()
        await run_until_done()
        print(f"   done in {time.perf_counter() - t0:.2f}s\n")

        jobs = sorted(await runner.list_jobs(limit=100), key=lambda j: j.id)
        print("3. What happened:")
        for job in jobs:
            print(describe(job))
        print()
        print(table(jobs))
        print("  (ids may skip a number: the deduplicated enqueue used one up)\n")

        stats = await runner.stats()
        totals = ", ".join(f"{status}={n}" for status, n in stats.totals.items())
        print(f"4. runner.stats() totals: {totals}")

        spawned = next(j for j in jobs if j.task.endswith("resize_image"))
        print(
            f"\nThe resize_image job was enqueued by the email handler and inherited "
            f"request_id={spawned.request_id!r}."
        )
    print(f"Finished in {time.perf_counter() - started:.1f}s.")


if __name__ == "__main__":
    # Show the runner's warnings (such as the retried attempt) in a compact form.
    logging.basicConfig(
        level=logging.WARNING, format="   log: %(levelname)s %(message)s", stream=sys.stdout
    )
    asyncio.run(main())
