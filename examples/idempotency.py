"""Idempotency keys: enqueue the same work twice, get one job.

    python examples/idempotency.py

An idempotency key names a piece of work, such as "charge order 1001". Clients retry
(a timeout, a double click, a redelivered webhook), and each retry enqueues again; with
the same key they all get the one job back instead of doing the work twice.

The rules:

* The key's scope is (task name, key): two tasks may use the same key independently.
* Same key, same arguments -> the existing job is returned with `deduplicated=True`,
  whatever its status (queued, running, or finished, with its result); nothing new is
  written or run.
* Same key, different arguments -> `IdempotencyConflict`, and nothing is written:
  one key must not silently stand for two different pieces of work.
* A finished job keeps its key for `idempotency_ttl` (24 h by default, an option of
  `TaskRunner`); after that the key is free again.
* `enqueue_many(..., idempotency_keys=[...])` takes one key (or None) per call, in one
  round trip, all or nothing: a conflict anywhere in the batch writes none of it.
"""

from __future__ import annotations

import asyncio

from taskrunner import IdempotencyConflict, TaskRunner

runner = TaskRunner(schema="taskrunner_idempotency_example")


@runner.task
async def charge_order(order_id: int, amount_cents: int) -> str:
    await asyncio.sleep(0.01)  # pretend to call the payment provider
    return f"charged {amount_cents} cents for order {order_id}"


@runner.task
async def email_receipt(order_id: int) -> str:
    return f"receipt for order {order_id} sent"


async def count_jobs() -> int:
    return sum((await runner.stats()).totals.values())


async def main() -> None:
    async with runner:
        print(f"Database: {runner.target.redacted} (from {runner.target.source})")
        await runner.job_queue.clear()

        print("\n1. Same key, same arguments -> the same job")
        first = await charge_order.enqueue(1001, 2500, idempotency_key="charge-1001")
        second = await charge_order.enqueue(1001, 2500, idempotency_key="charge-1001")
        print(f"   first enqueue : job {first.id}, deduplicated={first.deduplicated}")
        print(f"   second enqueue: job {second.id}, deduplicated={second.deduplicated}")
        assert second.id == first.id
        assert second.deduplicated

        print("\n2. Same key, different arguments -> IdempotencyConflict")
        before = await count_jobs()
        try:
            await charge_order.enqueue(1001, 9999, idempotency_key="charge-1001")
        except IdempotencyConflict as exc:
            print(f"   IdempotencyConflict: {exc}")
            print(f"   (exc.existing_job_id={exc.existing_job_id}, exc.task={exc.task!r})")
        else:
            raise AssertionError("expected IdempotencyConflict")
        after = await count_jobs()
        print(f"   jobs in the queue before and after the call: {before} and {after}")
        assert after == before

        print("\n3. The scope is (task, key): another task may use the same key")
        receipt = await email_receipt.enqueue(1001, idempotency_key="charge-1001")
        print(
            f"   email_receipt with key 'charge-1001' -> job {receipt.id}, "
            f"deduplicated={receipt.deduplicated}"
        )

        print("\n4. enqueue_many with idempotency_keys (one round trip, all or nothing)")
        calls = [(1002, 1000), (1003, 1500), {"order_id": 1004, "amount_cents": 700}]
        keys = ["charge-1002", "charge-1003", "charge-1004"]
        batch = await runner.enqueue_many(charge_order, calls, idempotency_keys=keys)
        print("   first batch : " + ", ".join(f"job {j.id} dedup={j.deduplicated}" for j in batch))
        again = await runner.enqueue_many(charge_order, calls, idempotency_keys=keys)
        print("   same batch  : " + ", ".join(f"job {j.id} dedup={j.deduplicated}" for j in again))
        assert [j.id for j in again] == [j.id for j in batch]
        assert all(j.deduplicated for j in again)

        before = await count_jobs()
        try:
            await runner.enqueue_many(
                charge_order,
                [(1005, 300), (1002, 1)],  # a new call, then a conflicting one
                idempotency_keys=["charge-1005", "charge-1002"],
            )
        except IdempotencyConflict as exc:
            print(f"   a batch with one conflict: IdempotencyConflict: {exc}")
        else:
            raise AssertionError("expected IdempotencyConflict")
        assert await count_jobs() == before
        fresh = await charge_order.enqueue(1005, 300, idempotency_key="charge-1005")
        print(
            f"   ...and its good call (order 1005) was not written either: enqueueing it "
            f"now gives a new job {fresh.id}, deduplicated={fresh.deduplicated}"
        )

        print("\n5. A finished job keeps its key, and its result")
        await runner.run_worker(concurrency=4, stop_when_idle=True, poll_interval=0.1)
        later = await charge_order.enqueue(1001, 2500, idempotency_key="charge-1001")
        print(
            f"   enqueue after it ran: job {later.id}, deduplicated={later.deduplicated}, "
            f"status={later.status}, result={later.result!r}"
        )
        assert later.id == first.id
        assert later.deduplicated

        jobs = sorted(await runner.list_jobs(), key=lambda j: j.id)
        print(
            f"\nJobs written in all: {len(jobs)} (every other enqueue got an existing job "
            "back or was refused):"
        )
        for j in jobs:
            print(f"   job {j.id:>3} {j.task:<26} key={j.idempotency_key!r:<15} {j.status}")
        charged = [  # order 1004 was passed as a keyword argument
            j.args[0] if j.args else j.kwargs["order_id"]
            for j in jobs
            if j.task.endswith("charge_order")
        ]
        assert len(charged) == len(set(charged))
        print("No order was charged twice.")


if __name__ == "__main__":
    asyncio.run(main())
