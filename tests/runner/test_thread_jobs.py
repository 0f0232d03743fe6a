"""Thread jobs, which cannot be interrupted: a timeout counts from the thread's start; a
job cancelled or whose lease was lost keeps its slot, and stays running, until its thread
returns; it never runs twice at once, whether retried or claimed again."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from worker_helpers import background_worker, eventually, row

from taskrunner import JobStatus, TaskRunner, current_job
from taskrunner.queue import JobQueue, JobRow
from taskrunner.runner.context import JobContext
from taskrunner.runner.executors import Executors


@dataclass
class Blocking:
    """A thread task whose every attempt blocks until `release` is set, then returns its
    attempt number; `spans[attempt]` records its start and end (time.monotonic())."""

    task: Any
    release: threading.Event = field(default_factory=threading.Event)
    spans: dict[int, list[float]] = field(default_factory=dict)
    runs: list[list[float]] = field(default_factory=list)  # every run's start and end
    fail: bool = False  # raise instead of returning
    began: defaultdict[int, threading.Event] = field(
        default_factory=lambda: defaultdict(threading.Event)
    )

    def started(self, attempt: int = 1) -> bool:
        return attempt in self.spans

    def ended(self, attempt: int = 1) -> bool:
        return len(self.spans.get(attempt, [])) == 2


def blocking_task(runner: TaskRunner, **options: Any) -> Blocking:
    blocking = Blocking(task=None)

    @runner.task(**options)
    def blocks() -> int:
        ctx = current_job()
        assert ctx is not None
        span = blocking.spans[ctx.attempt] = [time.monotonic()]
        blocking.runs.append(span)
        blocking.began[ctx.attempt].set()
        try:
            blocking.release.wait(30)
            if blocking.fail:
                raise RuntimeError("failed after all")
            return ctx.attempt
        finally:
            span.append(time.monotonic())

    blocking.task = blocks
    return blocking


def context(job: JobRow) -> JobContext:
    return JobContext(
        job_id=job.id,
        task=job.task,
        queue=job.queue,
        attempt=job.attempts,
        max_attempts=job.max_attempts,
        request_id=job.request_id,
    )


def no_extension(_job_id: int, _seconds: float) -> Future[None]:
    done: Future[None] = Future()
    done.set_result(None)
    return done


async def test_a_thread_jobs_timeout_counts_from_when_its_thread_starts_not_from_when_it_was_queued(
    tr: TaskRunner,
):
    gate = threading.Event()

    @tr.task
    def occupies_the_thread() -> None:
        gate.wait(10)

    @tr.task(timeout=0.3)
    def quick() -> int:
        return 7

    await occupies_the_thread.enqueue()
    await quick.enqueue()
    jobs = await tr.job_queue.claim(list(tr.tasks), limit=2, owner="test", lease=60)
    by_task = {job.task: job for job in jobs}
    executors = Executors(1, no_extension)  # one thread: `quick` waits for it
    try:
        first = asyncio.create_task(
            executors.run(occupies_the_thread, by_task[occupies_the_thread.name], context(jobs[0]))
        )
        second = asyncio.create_task(executors.run(quick, by_task[quick.name], context(jobs[1])))

        done, _ = await asyncio.wait({second}, timeout=1.0)  # queued past its timeout
        assert not done
        gate.set()
        assert await asyncio.wait_for(second, 10) == b"7"
        await asyncio.wait_for(first, 10)
    finally:
        gate.set()
        await executors.close()


async def test_a_cancelled_thread_job_keeps_its_slot_and_stays_running_until_its_thread_returns(
    tr: TaskRunner,
):
    blocking = blocking_task(tr)
    next_started = asyncio.Event()

    @tr.task
    async def waiting() -> None:
        next_started.set()

    job = await blocking.task.enqueue()
    async with background_worker(tr, concurrency=1) as bg:
        await eventually(blocking.started, message="thread started")
        queued = await waiting.enqueue()
        assert await tr.cancel(job.id)
        await eventually(lambda: bg.worker.running[job.id].stop_reason == "cancel")

        done, _ = await asyncio.wait({asyncio.ensure_future(next_started.wait())}, timeout=0.5)
        assert not done  # its thread still runs: no other job takes its slot
        still = await row(tr, job.id)
        assert (still.status, still.cancel_requested) == ("running", True)

        blocking.release.set()
        await asyncio.wait_for(next_started.wait(), 10)
        assert (await tr.wait(queued.id, timeout=10)).status is JobStatus.SUCCEEDED


async def test_a_thread_job_whose_thread_returns_after_its_cancel_keeps_its_result(
    tr: TaskRunner,
):
    blocking = blocking_task(tr)

    job = await blocking.task.enqueue()
    async with background_worker(tr, concurrency=1) as bg:
        await eventually(blocking.started, message="thread started")
        assert await tr.cancel(job.id)
        await eventually(lambda: bg.worker.running[job.id].stop_reason == "cancel")
        blocking.release.set()
        done = await tr.wait(job.id, timeout=10)

    assert (done.status, done.result) == (JobStatus.SUCCEEDED, 1)


async def test_a_cancelled_thread_job_cannot_be_retried_until_its_thread_returned(
    tr: TaskRunner,
):
    blocking = blocking_task(tr, max_attempts=1)
    blocking.fail = True  # it ends cancelled, which a retry may queue again

    job = await blocking.task.enqueue()
    async with background_worker(tr, concurrency=2) as bg:
        await eventually(blocking.started, message="thread started")
        assert await tr.cancel(job.id)
        await eventually(lambda: bg.worker.running[job.id].stop_reason == "cancel")

        assert not await tr.retry(job.id)  # still running: nothing to retry yet
        assert (await row(tr, job.id)).status == "running"

        blocking.release.set()
        assert (await tr.wait(job.id, timeout=10)).status is JobStatus.CANCELLED
        assert await tr.retry(job.id)
        await tr.wait(job.id, timeout=10)

    first, second = blocking.runs
    assert first[1] <= second[0], "the retry started while the first thread still ran"


async def test_a_thread_job_its_worker_claims_again_starts_only_after_its_first_thread_returns(
    tr: TaskRunner,
):
    blocking = blocking_task(tr, lease=1.0)

    job = await blocking.task.enqueue()
    async with background_worker(tr, rescue_interval=60, poll_interval=0.02) as bg:
        await eventually(blocking.started, message="first attempt started")
        first_lease = bg.worker.running[job.id].lease
        async with tr.job_queue.db.acquire() as conn, conn.transaction():
            await conn.execute(
                f"UPDATE \"{tr.schema}\".jobs SET lease_expires_at = now() - interval '1 second' "
                "WHERE id = $1",
                job.id,
            )
            assert await JobQueue(conn, tr.schema).rescue_expired() == [(job.id, "queued")]
        await eventually(
            lambda: bg.worker.running[job.id].lease != first_lease, message="claimed again"
        )
        # The first thread still runs: the second attempt waits for it.
        assert not await asyncio.to_thread(blocking.began[2].wait, 0.5)
        blocking.release.set()
        finished = await tr.wait(job.id, timeout=10)

    assert (finished.status, finished.result) == (JobStatus.SUCCEEDED, 2)
    assert blocking.spans[1][1] <= blocking.spans[2][0]
