"""Periodic tasks: a cron schedule in a time zone, an interval schedule, and the verbs.

    python examples/periodic.py

`@runner.periodic` declares schedules in code; every worker of the runner writes them
when it starts, and all workers together enqueue exactly one job per tick (start a
second `taskrunner worker examples.periodic:runner` and nothing doubles). The worker
here runs inside this script only to keep the example in one file.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

from taskrunner import InvalidSchedule, TaskRunner, current_job

runner = TaskRunner(schema="taskrunner_periodic")
beats: list[str] = []
three_beats = asyncio.Event()


@runner.periodic(cron="0 3 * * *", timezone="Europe/Berlin")  # 03:00 in Berlin, DST or not
@runner.task
async def nightly_report() -> None:
    print("nightly report")


@runner.periodic(every=timedelta(seconds=1), name="heartbeat", kwargs={"service": "api"})
@runner.task
async def heartbeat(service: str) -> None:
    job = current_job()
    assert job is not None
    beats.append(service)
    if len(beats) == 3:
        three_beats.set()
    print(f"heartbeat of {service} (job {job.job_id})")


async def main() -> None:
    async with runner:
        for name in ("heartbeat", "examples.periodic.nightly_report", "weekly"):
            await runner.remove_schedule(name)  # a clean start on every run
        await runner.job_queue.clear()

        # A schedule written from code, at once; the same name again replaces it.
        await runner.add_schedule("weekly", nightly_report, cron="0 4 * * 0")
        try:
            await runner.add_schedule("broken", nightly_report, cron="0 25 * * *")
        except InvalidSchedule as exc:
            print(f"refused: {exc}")

        worker = asyncio.create_task(runner.run_worker(concurrency=4, poll_interval=0.2))
        await asyncio.wait_for(three_beats.wait(), timeout=15)
        signal.raise_signal(signal.SIGTERM)  # what a deployment sends: the worker stops cleanly
        await worker

        print(f"heartbeat ran {len(beats)} times, one job per tick")
        for schedule in await runner.list_schedules():
            when = schedule.cron or f"every {schedule.every}"
            upcoming = f"{schedule.next_run_at:%Y-%m-%d %H:%M:%S} UTC"
            print(f"  {schedule.name:<34} {when:<16} next {upcoming}")

        print("paused:", await runner.pause_schedule("heartbeat"))
        job = await runner.run_schedule_now("heartbeat")  # one extra run, outside the ticks
        print(f"run now: job {job.id} with {job.kwargs}, paused or not")


if __name__ == "__main__":
    asyncio.run(main())
