"""Retention and cleanup: how long finished jobs are kept, a one-off cleanup, the
archive, and the built-in cleanup task on a schedule.

    python examples/cleanup.py

The retention below is written to the schema when the runner opens, and every worker of
the schema prunes by it. `cleanup()` acts once: here it archives succeeded jobs, runs
failed ones again and removes cancelled ones. The same from a shell:
`taskrunner cleanup --app examples.cleanup:runner --succeeded archive --dry-run`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from taskrunner import Cleanup, PermanentFailure, Retention, TaskRunner

runner = TaskRunner(
    schema="taskrunner_cleanup",
    retention=Retention(
        succeeded=timedelta(hours=1),  # keyed jobs stay until their key expires anyway
        failed=timedelta(days=30),
        cancelled=timedelta(0),  # gone at the next prune
    ),
)
attempts: dict[int, int] = {}


@runner.task
async def charge(order: int) -> str:
    attempts[order] = attempts.get(order, 0) + 1
    if order == 3 and attempts[order] == 1:
        raise PermanentFailure("card declined")  # fails for good, until it is run again
    return f"order {order} charged"


async def work() -> None:
    await runner.run_worker(concurrency=4, stop_when_idle=True, poll_interval=0.1)


async def main() -> None:
    async with runner:
        await runner.job_queue.clear()  # a clean start on every run
        await runner.cleanup(archived="remove")
        print(f"retention of this schema: {runner.retention}")

        first = await charge.enqueue(1, idempotency_key="order-1")
        await charge.enqueue(2)
        failed = await charge.enqueue(3)
        cancelled = await charge.enqueue(4, delay=3600)
        await runner.cancel(cancelled.id)
        await work()

        plan = {"succeeded": "archive", "failed": "rerun", "cancelled": "remove"}
        would = await runner.cleanup(**plan, dry_run=True)
        print("dry run:", {status: would[status] for status in plan})
        done = await runner.cleanup(**plan)
        print("cleanup:", {status: done[status] for status in plan})

        archived = await runner.get_job(first.id)
        assert archived is not None
        print(f"archived job: {archived.status}, result {archived.result!r}")
        print(f"archive holds {len(await runner.list_jobs(archived=True))} jobs")
        again = await charge.enqueue(1, idempotency_key="order-1")
        print(f"key order-1 is free again: a new job, deduplicated={again.deduplicated}")

        await work()  # runs the rerun job 3 and the new job for order 1
        rerun = await runner.get_job(failed.id)
        assert rerun is not None
        print(f"order 3 after its rerun: {rerun.status}, {rerun.result!r}")

        try:
            await runner.cleanup(running="archive")
        except ValueError as exc:
            print(f"refused: {exc}")

        # The built-in task, weekly: archive failed jobs a day old, remove old archives.
        schedule = await runner.add_schedule(
            "weekly-cleanup",
            runner.cleanup_task,
            cron="0 4 * * 0",
            kwargs={"failed": "archive", "archived": "remove", "older_than": 7 * 86400},
        )
        print(f"schedule {schedule.name}: {schedule.task} at {schedule.cron!r}")
        job = await runner.run_schedule_now("weekly-cleanup")
        await work()
        counts = await runner.result(job.id, timeout=10)
        print(f"cleanup task: archived {counts['failed']} failed, removed {counts['archived']}")
        await runner.cleanup(failed=Cleanup("archive", older_than=timedelta(days=1)))
        await runner.remove_schedule("weekly-cleanup")


if __name__ == "__main__":
    asyncio.run(main())
