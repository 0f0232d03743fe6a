"""Retries: how many attempts, which errors retry, how long to wait, and that the attempt
count and the next run time live in the job's row."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import process_tasks
import tenacity
from worker_helpers import (
    background_worker,
    db_now,
    row,
    run_until_idle,
)

from taskrunner import JobStatus, PermanentFailure, Retry, RetryLater, TaskRunner, current_job


def attempt() -> int:
    ctx = current_job()
    assert ctx is not None
    return ctx.attempt


async def test_a_job_that_fails_twice_succeeds_on_its_third_attempt(tr: TaskRunner):
    seen: list[int] = []

    @tr.task(retry=Retry(max_attempts=3, wait=tenacity.wait_fixed(0.01)))
    async def flaky() -> str:
        seen.append(attempt())
        if attempt() < 3:
            raise RuntimeError(f"attempt {attempt()} fails")
        return "third time lucky"

    job = await flaky.enqueue()
    assert job.max_attempts == 3
    async with background_worker(tr):
        done = await tr.wait(job.id, timeout=10)

    assert (done.status, done.attempts, done.result) == (
        JobStatus.SUCCEEDED,
        3,
        "third time lucky",
    )
    assert seen == [1, 2, 3]


async def test_a_job_that_exhausts_its_attempts_fails_with_the_last_error(tr: TaskRunner):
    @tr.task(retry=Retry(max_attempts=3, wait=tenacity.wait_fixed(0.01)))
    async def hopeless() -> None:
        raise RuntimeError(f"attempt {attempt()} fails")

    job = await hopeless.enqueue()
    async with background_worker(tr):
        done = await tr.wait(job.id, timeout=10)

    assert (done.status, done.attempts) == (JobStatus.FAILED, 3)
    assert done.last_error is not None
    assert done.last_error.startswith("RuntimeError: attempt 3 fails")
    assert done.finished_at is not None


async def test_max_attempts_given_at_enqueue_overrides_the_tasks_retry_policy(tr: TaskRunner):
    @tr.task(retry=Retry(max_attempts=5, wait=tenacity.wait_fixed(0.01)))
    async def hopeless() -> None:
        raise RuntimeError("no")

    job = await hopeless.enqueue(max_attempts=2)
    async with background_worker(tr):
        done = await tr.wait(job.id, timeout=10)
    assert (done.status, done.attempts, done.max_attempts) == (JobStatus.FAILED, 2, 2)


async def test_an_error_outside_retry_on_fails_the_job_at_once(tr: TaskRunner):
    @tr.task(retry=Retry(max_attempts=5, wait=tenacity.wait_fixed(0.01), retry_on=(ValueError,)))
    async def wrong_type() -> None:
        raise TypeError("not retryable")

    job = await wrong_type.enqueue()
    await run_until_idle(tr)

    done = await row(tr, job.id)
    assert (done.status, done.attempts) == ("failed", 1)
    assert done.last_error is not None
    assert done.last_error.startswith("TypeError: not retryable")


async def test_an_error_in_retry_on_is_retried(tr: TaskRunner):
    @tr.task(retry=Retry(max_attempts=5, wait=tenacity.wait_fixed(0.01), retry_on=(ValueError,)))
    async def wrong_value() -> int:
        if attempt() == 1:
            raise ValueError("retryable")
        return attempt()

    job = await wrong_value.enqueue()
    async with background_worker(tr):
        assert await tr.result(job.id, timeout=10) == 2


async def test_dont_retry_on_wins_over_retry_on(tr: TaskRunner):
    class Fatal(ValueError):
        pass

    @tr.task(
        retry=Retry(
            max_attempts=5,
            wait=tenacity.wait_fixed(0.01),
            retry_on=(ValueError,),
            dont_retry_on=(Fatal,),
        )
    )
    async def fatal() -> None:
        raise Fatal("a ValueError, but never retried")

    job = await fatal.enqueue()
    await run_until_idle(tr)

    done = await row(tr, job.id)
    assert (done.status, done.attempts) == ("failed", 1)
    assert done.last_error is not None
    assert "never retried" in done.last_error


async def test_retry_later_runs_the_job_again_after_the_delay_it_asked_for(tr: TaskRunner):
    starts: list[float] = []

    @tr.task(retry=Retry(max_attempts=3, wait=tenacity.wait_fixed(0)))
    async def not_yet() -> int:
        starts.append(time.monotonic())
        if attempt() == 1:
            raise RetryLater(0.2)
        return attempt()

    job = await not_yet.enqueue()
    async with background_worker(tr, poll_interval=0.02):
        assert await tr.result(job.id, timeout=10) == 2

    assert len(starts) == 2
    assert starts[1] - starts[0] >= 0.2
    done = await tr.get_job(job.id)
    assert done is not None
    assert done.attempts == 2


async def test_retry_later_ignores_retry_on(tr: TaskRunner):
    @tr.task(retry=Retry(max_attempts=3, wait=tenacity.wait_fixed(0), retry_on=(KeyError,)))
    async def not_yet() -> int:
        if attempt() == 1:
            raise RetryLater(timedelta(seconds=0))
        return attempt()

    job = await not_yet.enqueue()
    async with background_worker(tr):
        assert await tr.result(job.id, timeout=10) == 2


async def test_retry_later_on_the_last_attempt_fails_the_job(tr: TaskRunner):
    @tr.task(retry=Retry(max_attempts=2, wait=tenacity.wait_fixed(0)))
    async def never_ready() -> None:
        raise RetryLater(0)

    job = await never_ready.enqueue()
    async with background_worker(tr):
        done = await tr.wait(job.id, timeout=10)
    assert (done.status, done.attempts) == (JobStatus.FAILED, 2)


async def test_permanent_failure_fails_the_job_at_once(tr: TaskRunner):
    @tr.task(retry=Retry(max_attempts=5, wait=tenacity.wait_fixed(0)))
    async def doomed() -> None:
        raise PermanentFailure("the account was deleted")

    job = await doomed.enqueue()
    await run_until_idle(tr)

    done = await tr.get_job(job.id)
    assert done is not None
    assert (done.status, done.attempts) == (JobStatus.FAILED, 1)
    assert done.last_error is not None
    assert "the account was deleted" in done.last_error


async def test_permanent_failure_from_a_thread_task_fails_the_job_at_once(tr: TaskRunner):
    @tr.task(retry=Retry(max_attempts=5, wait=tenacity.wait_fixed(0)))
    def doomed() -> None:
        raise PermanentFailure("nope")

    job = await doomed.enqueue()
    await run_until_idle(tr)
    assert (await row(tr, job.id)).attempts == 1
    assert (await row(tr, job.id)).status == "failed"


async def test_a_failed_attempt_leaves_the_job_queued_for_later_with_its_count_in_the_row(
    tr: TaskRunner,
):
    @tr.task(retry=Retry(max_attempts=4, wait=tenacity.wait_fixed(30)))
    async def wait_long() -> None:
        raise RuntimeError("try again in 30s")

    job = await wait_long.enqueue()
    await run_until_idle(tr)  # returns: the retry is not due, so the worker is idle

    pending = await row(tr, job.id)
    now = await db_now(tr)
    assert (pending.status, pending.attempts, pending.max_attempts) == ("queued", 1, 4)
    assert pending.finished_at is None
    assert pending.lease_id is None
    assert pending.lease_owner is None
    assert pending.last_error is not None
    assert "try again in 30s" in pending.last_error
    assert timedelta(seconds=25) < pending.run_at - now <= timedelta(seconds=30)


async def test_the_wait_strategy_is_given_the_number_of_the_failed_attempt(tr: TaskRunner):
    @tr.task(
        retry=Retry(
            max_attempts=4, wait=tenacity.wait_exponential(multiplier=100, exp_base=2, max=10_000)
        )
    )
    async def backoff() -> None:
        raise RuntimeError("fail")

    job = await backoff.enqueue()
    await run_until_idle(tr)
    first = await row(tr, job.id)
    delay_1 = (first.run_at - await db_now(tr)).total_seconds()

    # Make it due again and run the second attempt.
    await tr.job_queue.db.execute(
        f'UPDATE "{tr.schema}".jobs SET run_at = now() WHERE id = $1', job.id
    )
    await run_until_idle(tr)
    second = await row(tr, job.id)
    delay_2 = (second.run_at - await db_now(tr)).total_seconds()

    assert second.attempts == 2
    assert 90 < delay_1 <= 100  # 100 * 2**0
    assert 190 < delay_2 <= 200  # 100 * 2**1


async def test_a_retry_survives_a_worker_restart(tr: TaskRunner):
    @tr.task(retry=Retry(max_attempts=3, wait=tenacity.wait_fixed(0.3)))
    async def flaky() -> int:
        if attempt() == 1:
            raise RuntimeError("first attempt fails")
        return attempt()

    job = await flaky.enqueue()
    await run_until_idle(tr)  # first attempt fails; the retry is 0.3 s away
    assert (await row(tr, job.id)).status == "queued"

    await asyncio.sleep(0.35)
    await run_until_idle(tr)  # a fresh worker picks the retry up from the row
    done = await tr.get_job(job.id)
    assert done is not None
    assert (done.status, done.attempts, done.result) == (JobStatus.SUCCEEDED, 2, 2)


async def test_permanent_failure_from_a_process_task_fails_the_job_at_once(tr: TaskRunner):
    give_up = tr.task(executor="process", retry=Retry(max_attempts=5, wait=tenacity.wait_fixed(0)))(
        process_tasks.give_up.func
    )

    job = await give_up.enqueue("the account was deleted")
    await run_until_idle(tr, concurrency=1, process_pool_size=1)

    done = await row(tr, job.id)
    assert (done.status, done.attempts) == ("failed", 1)
    assert done.last_error is not None
    assert done.last_error.startswith("PermanentFailure: the account was deleted")


async def test_retry_later_from_a_process_task_retries_after_the_delay_it_asked_for(
    tr: TaskRunner,
):
    # retry_on excludes everything the handler raises: only RetryLater itself may retry.
    task = tr.task(
        executor="process",
        retry=Retry(max_attempts=3, wait=tenacity.wait_fixed(0), retry_on=(KeyError,)),
    )(process_tasks.retry_later_once.func)

    job = await task.enqueue(0.3)
    async with background_worker(tr, concurrency=1, process_pool_size=1):
        done = await tr.wait(job.id, timeout=15)

    assert (done.status, done.attempts, done.result) == (JobStatus.SUCCEEDED, 2, 2)
    assert done.started_at is not None
    assert (done.started_at - done.created_at).total_seconds() >= 0.3
