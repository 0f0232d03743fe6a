"""The bare queue layer on its own: JSON jobs in PostgreSQL, no task functions.

Shows, with only `taskrunner.db` and `taskrunner.queue.JobQueue`:

* finding the database (`resolve_dsn`: a --dsn argument, else $TASKRUNNER_DSN or
  $DATABASE_URL, else an embedded PostgreSQL under ./.taskrunner/), a pool, migrations;
* enqueueing: an idempotency key used twice gives one job, a delayed job, a batch;
* claiming a batch under a lease, completing jobs, failing one with a retry;
* per-queue statistics, then deleting the example's jobs again.

Run it with `python examples/bare_queue.py [--dsn postgresql://...]`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import warnings

import msgspec

from taskrunner.db import Migrator, create_pool, resolve_dsn
from taskrunner.queue import Completion, Failure, JobQueue, JobRow, NewJob

SCHEMA = "taskrunner_example_bare"
WORKER = "example-worker-1"


def encode(value: object) -> bytes:
    return msgspec.json.encode(value)


def describe(job: JobRow) -> str:
    args = ", ".join(encode(a).decode() for a in msgspec.json.decode(job.args))
    return f"job {job.id} {job.task}({args}) [queue {job.queue}]"


async def main(dsn: str | None) -> None:
    target = await resolve_dsn(dsn)
    print(f"Database: {target.redacted} (from {target.source})")
    pool = await create_pool(target, min_size=1, max_size=4)
    try:
        async with pool.acquire() as conn:
            applied = await Migrator(SCHEMA).migrate(conn)
        print(
            f"Schema {SCHEMA!r}: " + (f"applied {', '.join(applied)}" if applied else "up to date")
        )
        queue = JobQueue(pool, SCHEMA)
        await queue.clear()  # in case an earlier run was interrupted
        try:
            await demo(queue)
        finally:
            deleted = await queue.clear()
            print(f"\nCleaned up: deleted {deleted} jobs from schema {SCHEMA!r}.")
    finally:
        await pool.close()


async def demo(queue: JobQueue) -> None:
    print("\n1. Enqueue")
    welcome = NewJob(
        task="send_welcome_email",
        args=encode(["alice@example.com"]),
        queue="email",
        idempotency_key="welcome:alice",
    )
    first = await queue.enqueue(welcome)
    again = await queue.enqueue(welcome)  # e.g. the web request was retried
    print(f"   {describe(first.job)}: enqueued (deduplicated={first.deduplicated})")
    print(
        f"   same idempotency key again -> job {again.job.id} "
        f"(deduplicated={again.deduplicated}): still one welcome email"
    )

    reminder = await queue.enqueue(
        NewJob(task="send_reminder", args=encode(["alice@example.com"]), queue="email", delay=3600)
    )
    print(f"   {describe(reminder.job)}: delayed until {reminder.job.run_at:%H:%M:%S %Z}")

    batch = await queue.enqueue_many(
        [
            NewJob(task="resize_image", args=encode([f"photo-{n}.jpg", 256]), queue="images")
            for n in range(1, 4)
        ]
    )
    print(
        f"   a batch of {len(batch)} resize_image jobs in one round trip: "
        f"ids {', '.join(str(r.job.id) for r in batch)}"
    )

    print("\n2. Claim")
    claimed = await queue.claim(
        ["send_welcome_email", "send_reminder", "resize_image"],
        limit=10,
        owner=WORKER,
        lease=30.0,
    )
    print(
        f"   {WORKER} claimed {len(claimed)} jobs under a 30 s lease "
        "(the delayed reminder is not due yet):"
    )
    for job in claimed:
        print(
            f"   - {describe(job)}, attempt {job.attempts}/{job.max_attempts}, lease {job.lease_id}"
        )

    print("\n3. Acknowledge")
    unlucky, *done = [j for j in claimed if j.task == "resize_image"]
    done += [j for j in claimed if j.task != "resize_image"]
    completed = await queue.complete_many(
        [Completion(lease=j.lease, result=encode({"ok": True})) for j in done]
    )
    for job in done:
        print(f"   {describe(job)} -> {completed.applied[job.id]}")
    failed = await queue.fail_many(
        [Failure(lease=unlucky.lease, error="ImageServerBusy: 503", retry_in=60.0)]
    )
    retried = await queue.get(unlucky.id)
    assert retried is not None
    print(
        f"   {describe(unlucky)} failed (ImageServerBusy) -> {failed.applied[unlucky.id]} "
        f"again, retry at {retried.run_at:%H:%M:%S %Z}, attempt {retried.attempts} "
        f"of {retried.max_attempts} used"
    )
    stale = await queue.complete_many([Completion(lease=unlucky.lease)])
    print(
        f"   completing it with the old lease is refused (fencing): "
        f"{len(stale.lost)} lease lost, nothing changed"
    )

    again_claimed = await queue.claim(
        ["send_welcome_email", "send_reminder", "resize_image"], limit=10, owner=WORKER
    )
    print(
        f"   claiming again now finds {len(again_claimed)} runnable jobs "
        "(the retry and the reminder are in the future)"
    )

    print("\n4. Stats")
    print(f"   {'queue':<8} {'status':<10} {'count':>5}")
    for row in await queue.stats():
        print(f"   {row.queue:<8} {row.status:<10} {row.count:>5}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="PostgreSQL URI (default: $TASKRUNNER_DSN, else embedded)")
    # The queue logs acks it refuses; show them in line with the rest of the output.
    logging.basicConfig(stream=sys.stdout, format="   (log: %(message)s)", level=logging.WARNING)
    # The embedded server's library falls back to /tmp without $XDG_RUNTIME_DIR; harmless.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    asyncio.run(main(parser.parse_args().dsn))
