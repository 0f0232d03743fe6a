"""taskrunner from plain, blocking code: a script, a Django view, a Flask handler.

    python examples/sync_script.py

`runner.sync` has the runner's verbs as ordinary calls (enqueue, enqueue_many, get_job,
wait, result, cancel, pause, resume, retry, stats, list_jobs). One connection pool, on a
private event loop in a background thread, serves all of them; it closes at the end of
the `with` block (or at interpreter exit). The worker here runs in a thread of this
script only to keep the example in one file: normally it is its own process
(`taskrunner worker examples.sync_script:runner`).
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

from taskrunner import TaskRunner

runner = TaskRunner(schema="taskrunner_sync_script")


@runner.task
def make_invoice(order_id: int, cents: int) -> datetime:
    """A plain task; its return type makes result() give back a datetime."""
    return datetime(2026, 1, order_id % 28 + 1, tzinfo=UTC)


def worker_until_idle() -> None:
    """A worker in a thread of its own, with an event loop of its own."""
    asyncio.run(runner.run_worker(concurrency=4, stop_when_idle=True, poll_interval=0.1))


def main() -> None:
    with runner.sync as tasks:  # no async/await anywhere in this function
        first = tasks.enqueue(make_invoice, 7, 4999)
        batch = tasks.enqueue_many(make_invoice, [(8, 100), {"order_id": 9, "cents": 250}])
        print(f"enqueued jobs {first.id}, {batch[0].id} and {batch[1].id} from blocking code")

        thread = threading.Thread(target=worker_until_idle)
        thread.start()
        thread.join(60)

        issued = tasks.result(first.id, timeout=10)
        print(f"invoice of order 7 issued on {issued:%Y-%m-%d} ({type(issued).__name__})")
        done = [tasks.wait(job.id, timeout=10) for job in (first, *batch)]
        print("statuses:", ", ".join(str(job.status) for job in done))
        print(f"succeeded jobs in the schema so far: {tasks.stats()['default']['succeeded']}")


if __name__ == "__main__":
    main()
