"""A job's life through the runner's API: get, wait, result, cancel, pause, resume, retry,
stats."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import process_tasks
import pytest
from worker_helpers import (
    background_worker,
    endless_task,
    eventually,
    row,
    run_until_idle,
)

from taskrunner import JobCancelled, JobFailed, JobStatus, PermanentFailure, TaskRunner


async def test_get_job_returns_none_for_an_unknown_id(tr: TaskRunner):
    assert await tr.get_job(987654321) is None


async def test_wait_returns_the_job_once_it_is_final(tr: TaskRunner):
    @tr.task
    async def hello(name: str) -> str:
        return f"hello {name}"

    job = await hello.enqueue("you")
    async with background_worker(tr):
        done = await tr.wait(job.id, timeout=10)

    assert done.id == job.id
    assert done.status is JobStatus.SUCCEEDED
    assert done.status.is_final
    assert done.result == "hello you"
    assert done.attempts == 1
    assert done.finished_at is not None
    assert done.started_at is not None


async def test_wait_raises_timeout_error_when_the_job_does_not_finish_in_time(tr: TaskRunner):
    @tr.task
    async def never_run() -> None:
        pass

    job = await never_run.enqueue()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await tr.wait(job.id, timeout=0.3)
    assert 0.25 <= time.monotonic() - started < 2


async def test_result_returns_the_handlers_value(tr: TaskRunner):
    @tr.task
    async def pair(a: int, b: str) -> list[object]:
        return [a, b]

    job = await pair.enqueue(1, "x")
    await run_until_idle(tr)
    assert await tr.result(job.id, timeout=5) == [1, "x"]


async def test_result_raises_job_failed_with_the_error_of_a_failed_job(tr: TaskRunner):
    @tr.task
    async def broken() -> None:
        raise PermanentFailure("the input is garbage")

    job = await broken.enqueue()
    await run_until_idle(tr)

    with pytest.raises(JobFailed) as caught:
        await tr.result(job.id, timeout=5)
    assert caught.value.job_id == job.id
    assert "the input is garbage" in str(caught.value.error)


async def test_result_raises_job_cancelled_for_a_cancelled_job(tr: TaskRunner):
    @tr.task
    async def unwanted() -> None:
        pass

    job = await unwanted.enqueue()
    assert await tr.cancel(job.id)

    with pytest.raises(JobCancelled) as caught:
        await tr.result(job.id, timeout=5)
    assert caught.value.job_id == job.id


async def test_cancelling_a_queued_job_cancels_it_and_no_worker_runs_it(tr: TaskRunner):
    ran: list[int] = []

    @tr.task
    async def unwanted() -> None:
        ran.append(1)

    job = await unwanted.enqueue()

    assert await tr.cancel(job.id) is True
    await run_until_idle(tr)

    cancelled = await tr.get_job(job.id)
    assert cancelled is not None
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.finished_at is not None
    assert ran == []


async def test_cancelling_a_finished_job_returns_false_and_changes_nothing(tr: TaskRunner):
    @tr.task
    async def quick() -> int:
        return 1

    job = await quick.enqueue()
    await run_until_idle(tr)
    before = await row(tr, job.id)

    assert await tr.cancel(job.id) is False
    assert await row(tr, job.id) == before


async def test_cancelling_a_running_async_job_cancels_its_handler_and_ends_it_cancelled(
    tr: TaskRunner,
):
    endless = endless_task(tr)
    started, saw_cancel = endless.started, endless.cancelled

    job = await endless.task.enqueue()
    async with background_worker(tr):
        await asyncio.wait_for(started.wait(), 10)
        assert await tr.cancel(job.id) is True
        ended = await tr.wait(job.id, timeout=10)

    assert saw_cancel.is_set()
    assert ended.status is JobStatus.CANCELLED
    assert ended.finished_at is not None
    with pytest.raises(JobCancelled):
        await tr.result(job.id, timeout=10)


async def test_cancelling_a_running_thread_job_ends_it_cancelled_once_its_thread_failed(
    tr: TaskRunner,
):
    # A thread cannot be interrupted: the job ends when it returns, by what really
    # happened (one that returns keeps its result: tests/runner/test_thread_jobs.py).
    started = threading.Event()

    @tr.task
    def blocking() -> str:
        started.set()
        time.sleep(0.5)
        raise RuntimeError("gave up")

    job = await blocking.enqueue()
    async with background_worker(tr):
        await eventually(started.is_set, message="thread handler started")
        assert await tr.cancel(job.id) is True
        ended = await tr.wait(job.id, timeout=10)

    assert ended.status is JobStatus.CANCELLED
    assert ended.result is None


async def test_cancelling_a_running_job_twice_returns_false_the_second_time(tr: TaskRunner):
    started = asyncio.Event()
    release = asyncio.Event()

    @tr.task
    async def stubborn() -> None:
        started.set()
        # Shields the handler so the cancel request stays pending while we ask again.
        await asyncio.shield(release.wait())

    job = await stubborn.enqueue()
    async with background_worker(tr):
        await asyncio.wait_for(started.wait(), 10)
        assert await tr.cancel(job.id) is True
        assert await tr.cancel(job.id) is False
        # Released only once the job ended: released earlier, the handler could return
        # before the cancel reached the worker (then the cancel came too late).
        try:
            ended = await tr.wait(job.id, timeout=10)
        finally:
            release.set()
        assert ended.status is JobStatus.CANCELLED


async def test_cancelling_a_running_process_job_kills_its_child_promptly(
    tr: TaskRunner, tmp_path: Path
):
    sleeper = tr.task(executor="process")(process_tasks.sleep_with_pid.func)
    pid_file = tmp_path / "pid"
    job = await sleeper.enqueue(str(pid_file), 3.5)

    async with background_worker(tr, concurrency=1, process_pool_size=1):
        await eventually(pid_file.exists, timeout=15, message="child started")
        asked = time.monotonic()
        assert await tr.cancel(job.id) is True
        ended = await tr.wait(job.id, timeout=10)
        took = time.monotonic() - asked

    assert ended.status is JobStatus.CANCELLED
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
    assert took < 2.5, f"the cancel took {took:.1f}s"


async def test_a_paused_job_is_not_run_until_it_is_resumed(tr: TaskRunner):
    ran: list[int] = []

    @tr.task
    async def later(n: int) -> int:
        ran.append(n)
        return n

    job = await later.enqueue(7)

    assert await tr.pause(job.id) is True
    assert (await tr.get_job(job.id)).status is JobStatus.PAUSED  # type: ignore[union-attr]
    await run_until_idle(tr)
    assert ran == []
    assert (await tr.get_job(job.id)).status is JobStatus.PAUSED  # type: ignore[union-attr]

    assert await tr.resume(job.id) is True
    assert (await tr.get_job(job.id)).status is JobStatus.QUEUED  # type: ignore[union-attr]
    await run_until_idle(tr)
    assert ran == [7]
    assert await tr.result(job.id, timeout=10) == 7


async def test_resuming_a_job_that_is_not_paused_returns_false(tr: TaskRunner):
    @tr.task
    async def noop() -> None:
        pass

    job = await noop.enqueue()
    assert await tr.resume(job.id) is False
    assert (await row(tr, job.id)).status == "queued"


async def test_pausing_a_running_job_returns_false_and_it_keeps_running(tr: TaskRunner):
    started = asyncio.Event()
    release = asyncio.Event()

    @tr.task
    async def busy() -> str:
        started.set()
        await release.wait()
        return "finished"

    job = await busy.enqueue()
    async with background_worker(tr):
        await asyncio.wait_for(started.wait(), 10)
        assert await tr.pause(job.id) is False
        assert (await row(tr, job.id)).status == "running"
        release.set()
        assert await tr.result(job.id, timeout=10) == "finished"


async def test_retrying_a_failed_job_queues_it_from_attempt_zero_and_it_runs_again(
    tr: TaskRunner,
):
    calls: list[int] = []

    @tr.task
    async def fails_first() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise PermanentFailure("first call fails")
        return "second call works"

    job = await fails_first.enqueue()
    await run_until_idle(tr)
    assert (await tr.get_job(job.id)).status is JobStatus.FAILED  # type: ignore[union-attr]

    assert await tr.retry(job.id) is True
    requeued = await tr.get_job(job.id)
    assert requeued is not None
    assert (requeued.status, requeued.attempts, requeued.finished_at) == (
        JobStatus.QUEUED,
        0,
        None,
    )

    await run_until_idle(tr)
    done = await tr.get_job(job.id)
    assert done is not None
    assert (done.status, done.attempts, done.result) == (
        JobStatus.SUCCEEDED,
        1,
        "second call works",
    )
    assert len(calls) == 2


async def test_retrying_a_cancelled_job_queues_it_again(tr: TaskRunner):
    @tr.task
    async def noop() -> str:
        return "ran"

    job = await noop.enqueue()
    assert await tr.cancel(job.id)
    assert await tr.retry(job.id) is True
    await run_until_idle(tr)
    assert await tr.result(job.id, timeout=10) == "ran"


async def test_retrying_a_succeeded_job_returns_false_and_changes_nothing(tr: TaskRunner):
    @tr.task
    async def fine() -> int:
        return 1

    job = await fine.enqueue()
    await run_until_idle(tr)
    before = await row(tr, job.id)

    assert await tr.retry(job.id) is False
    assert await row(tr, job.id) == before


async def test_stats_count_jobs_per_queue_and_status_and_age_the_oldest_queued_job(
    tr: TaskRunner,
):
    @tr.task(max_attempts=1)
    async def outcome(ok: bool) -> None:
        if not ok:
            raise ValueError("no")

    await outcome.enqueue(True)
    await outcome.enqueue(False)
    await run_until_idle(tr)
    paused = await outcome.enqueue(True, queue="other")
    await tr.pause(paused.id)
    await outcome.enqueue(True)
    await outcome.enqueue(True, queue="other")
    await outcome.enqueue(True, queue="other", delay=3600)
    await asyncio.sleep(0.3)

    stats = await tr.stats()

    assert stats["default"]["queued"] == 1
    assert stats["default"]["succeeded"] == 1
    assert stats["default"]["failed"] == 1
    assert stats["default"]["running"] == 0
    assert stats["other"]["queued"] == 2
    assert stats["other"]["paused"] == 1
    assert stats["other"][JobStatus.PAUSED] == 1
    assert stats.totals == {
        "queued": 3,
        "running": 0,
        "succeeded": 1,
        "failed": 1,
        "cancelled": 0,
        "paused": 1,
        "waiting": 0,
    }
    assert stats.oldest_queued_age is not None
    assert 0.25 <= stats.oldest_queued_age < 30, "the delayed job is not due, so not waiting"
    assert stats["default"].oldest_queued_age is not None


async def test_stats_of_an_empty_schema_have_zero_totals_and_no_age(tr: TaskRunner):
    stats = await tr.stats()
    assert set(stats.totals.values()) == {0}
    assert stats.oldest_queued_age is None
