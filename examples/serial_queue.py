"""Queue controls: a serial queue, a capped one, a pause button.

    python examples/serial_queue.py

Settings live in the database and hold for every worker of the cluster: start three
`taskrunner worker examples.serial_queue:runner` processes and the "ledger" queue still
runs one job at a time, in the order the jobs were enqueued. The workers here run inside
this script (two of them, four slots each) only to keep the example in one file.
"""

from __future__ import annotations

import asyncio

from taskrunner import TaskRunner

runner = TaskRunner(schema="taskrunner_serial_queue")
running: dict[str, int] = {"ledger": 0, "thumbnails": 0}
peak: dict[str, int] = {"ledger": 0, "thumbnails": 0}
ledger: list[int] = []


async def _run(queue: str, seconds: float) -> None:
    running[queue] += 1
    peak[queue] = max(peak[queue], running[queue])
    try:
        await asyncio.sleep(seconds)
    finally:
        running[queue] -= 1


@runner.task(queue="ledger")
async def post_entry(entry: int) -> None:
    """Entries must be posted one by one, in order: a serial queue."""
    await _run("ledger", 0.02)
    ledger.append(entry)


@runner.task(queue="thumbnails")
async def make_thumbnail(image: str) -> None:
    """At most two at once: the image service allows no more."""
    await _run("thumbnails", 0.05)


async def main() -> None:
    async with runner:
        await runner.job_queue.clear()  # a clean start on every run
        await runner.configure_queue("ledger", concurrency=1)  # serial
        await runner.configure_queue("thumbnails", concurrency=2)
        await runner.pause_queue("thumbnails")  # e.g. while the image service is down

        await runner.enqueue_many(post_entry, [(i,) for i in range(8)])
        await runner.enqueue_many(make_thumbnail, [(f"img-{i}.png",) for i in range(6)])

        # Two workers that stop once nothing is runnable: a paused queue keeps nobody busy.
        await asyncio.gather(
            *(runner.run_worker(concurrency=4, stop_when_idle=True) for _ in range(2))
        )
        in_order = ledger == list(range(8))
        print(f"ledger posted in order: {in_order}, at most {peak['ledger']} at once")
        held = {q.name: q.counts for q in await runner.queues()}["thumbnails"]
        print(f"thumbnails while paused: {held}")

        await runner.resume_queue("thumbnails")
        await runner.run_worker(concurrency=8, stop_when_idle=True)
        print(f"thumbnails after resume: at most {peak['thumbnails']} at once")
        for info in await runner.queues():
            limit = info.concurrency if info.concurrency is not None else "-"
            print(f"  {info.name:<11} paused={info.paused} concurrency={limit} {info.counts}")


if __name__ == "__main__":
    asyncio.run(main())
