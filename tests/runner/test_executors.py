"""The three executors: each runs handlers, returns their values, shows them the running job,
keeps the event loop free, and enforces timeouts; a dying child fails only its attempt."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import process_tasks
import pytest
import tenacity
from worker_helpers import (
    background_worker,
    eventually,
    max_loop_lag,
    run_until_idle,
)

from taskrunner import (
    JobStatus,
    Retry,
    TaskRunner,
    current_job,
    current_request_id,
    request_context,
)

FAST_RETRY = Retry(max_attempts=3, wait=tenacity.wait_fixed(0.01))


def pid_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_an_async_handler_runs_on_the_workers_event_loop_and_returns_its_value(
    tr: TaskRunner,
):
    loops: list[asyncio.AbstractEventLoop] = []

    @tr.task
    async def double(x: int) -> int:
        loops.append(asyncio.get_running_loop())
        return 2 * x

    assert double.executor == "async"
    job = await double.enqueue(21)
    await run_until_idle(tr)

    assert await tr.result(job.id, timeout=10) == 42
    assert loops == [asyncio.get_running_loop()]


async def test_a_plain_function_runs_in_a_thread_and_returns_its_value(tr: TaskRunner):
    threads: list[str] = []

    @tr.task
    def double(x: int) -> int:
        threads.append(threading.current_thread().name)
        return 2 * x

    assert double.executor == "thread"
    job = await double.enqueue(21)
    await run_until_idle(tr)

    assert await tr.result(job.id, timeout=10) == 42
    assert threads
    assert threads[0] != threading.main_thread().name


async def test_a_process_task_runs_in_a_child_process_and_returns_its_value(tr: TaskRunner):
    add = tr.task(executor="process")(process_tasks.add.func)
    context = tr.task(executor="process")(process_tasks.job_context.func)

    summed = await add.enqueue(40, 2)
    where = await context.enqueue()
    await run_until_idle(tr, process_pool_size=1)

    assert await tr.result(summed.id, timeout=10) == 42
    assert (await tr.result(where.id, timeout=10))["pid"] != os.getpid()


@pytest.mark.parametrize("executor", ["async", "thread", "process"])
async def test_current_job_describes_the_running_job_in_every_executor(
    tr: TaskRunner, executor: str
):
    if executor == "async":

        async def ctx_async() -> dict[str, Any]:
            return process_tasks.context_fields()

        task = tr.task(name="ctx.async", queue="ctxq", max_attempts=4)(ctx_async)
    elif executor == "thread":

        def ctx_thread() -> dict[str, Any]:
            return process_tasks.context_fields()

        task = tr.task(name="ctx.thread", queue="ctxq", max_attempts=4)(ctx_thread)
    else:
        task = tr.task(queue="ctxq", max_attempts=4, executor="process")(
            process_tasks.job_context.func
        )

    job = await task.enqueue(request_id=f"req-{executor}")
    await run_until_idle(tr, process_pool_size=1)

    seen = await tr.result(job.id, timeout=10)
    seen.pop("pid", None)
    assert seen == {
        "job_id": job.id,
        "task": task.name,
        "queue": "ctxq",
        "attempt": 1,
        "max_attempts": 4,
        "request_id": f"req-{executor}",
    }


@pytest.mark.parametrize("executor", ["async", "thread"])
async def test_current_job_counts_attempts_from_one(tr: TaskRunner, executor: str):
    attempts: list[int] = []

    def record() -> int:
        ctx = current_job()
        assert ctx is not None
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ValueError("not yet")
        return ctx.attempt

    if executor == "async":

        async def flaky() -> int:
            return record()

    else:

        def flaky() -> int:
            return record()

    task = tr.task(retry=FAST_RETRY)(flaky)
    job = await task.enqueue()
    async with background_worker(tr):
        assert await tr.result(job.id, timeout=10) == 3
    assert attempts == [1, 2, 3]


async def test_a_blocking_thread_task_does_not_block_the_event_loop(tr: TaskRunner):
    @tr.task
    def block(seconds: float) -> str:
        time.sleep(seconds)
        return "slept"

    job = await block.enqueue(0.8)
    async with background_worker(tr, concurrency=1):
        await eventually(lambda: _status_is(tr, job.id, "running"), message="job running")
        waiting = asyncio.ensure_future(tr.wait(job.id, timeout=10))
        lag = await max_loop_lag(waiting)
        assert (await waiting).status is JobStatus.SUCCEEDED

    assert lag < 0.2


async def test_a_cpu_bound_process_task_does_not_block_the_event_loop(tr: TaskRunner):
    burn = tr.task(executor="process")(process_tasks.burn.func)

    job = await burn.enqueue(0.8)
    async with background_worker(tr, concurrency=1, process_pool_size=1):
        waiting = asyncio.ensure_future(tr.wait(job.id, timeout=15))
        lag = await max_loop_lag(waiting)
        done = await waiting

    assert done.status is JobStatus.SUCCEEDED
    assert done.result > 0
    assert lag < 0.2


async def _status_is(tr: TaskRunner, job_id: int, status: str) -> bool:
    job = await tr.get_job(job_id)
    return job is not None and job.status == status


async def test_a_process_task_past_its_timeout_is_killed_and_the_pool_keeps_working(
    tr: TaskRunner, tmp_path: Path
):
    sleeper = tr.task(executor="process", timeout=1.0, max_attempts=1)(
        process_tasks.sleep_with_pid.func
    )
    add = tr.task(executor="process")(process_tasks.add.func)
    pid_file = tmp_path / "pid"

    async with background_worker(tr, concurrency=1, process_pool_size=1):
        # The child is started first, so its start-up (slow on a loaded machine) is not
        # taken out of the sleeper's second.
        before = await add.enqueue(1, 1)
        assert await tr.result(before.id, timeout=15) == 2
        stuck = await sleeper.enqueue(str(pid_file), 30.0)
        failed = await tr.wait(stuck.id, timeout=15)
        after = await add.enqueue(1, 2)
        assert await tr.result(after.id, timeout=15) == 3

    assert failed.status is JobStatus.FAILED
    assert failed.attempts == 1
    assert failed.last_error is not None
    assert "timeout" in failed.last_error.lower()
    pid = int(pid_file.read_text())
    assert pid_is_gone(pid), f"the timed-out child {pid} is still alive"


@pytest.mark.parametrize("how", ["exit", "sigkill"])
async def test_a_child_that_dies_fails_the_job_with_an_error_naming_the_death(
    tr: TaskRunner, how: str
):
    crash = tr.task(executor="process", max_attempts=1)(process_tasks.crash.func)

    job = await crash.enqueue(how, 99)
    await run_until_idle(tr, concurrency=1, process_pool_size=1)

    failed = await tr.get_job(job.id)
    assert failed is not None
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert failed.last_error is not None
    assert "died" in failed.last_error
    assert ("exit code 1" if how == "exit" else "exit code -9") in failed.last_error


async def test_a_child_that_dies_fails_only_that_attempt_and_the_retry_succeeds(tr: TaskRunner):
    crash = tr.task(executor="process", retry=FAST_RETRY)(process_tasks.crash.func)
    add = tr.task(executor="process")(process_tasks.add.func)

    async with background_worker(tr, concurrency=2, process_pool_size=2):
        bystander = await add.enqueue(2, 3)
        job = await crash.enqueue("sigkill", 1)
        assert await tr.result(job.id, timeout=20) == "survived attempt 2"
        assert await tr.result(bystander.id, timeout=20) == 5

    assert (await tr.get_job(job.id)).attempts == 2  # type: ignore[union-attr]


async def test_an_async_handler_past_its_timeout_fails_that_attempt(tr: TaskRunner):
    cancelled: list[bool] = []

    @tr.task(timeout=0.2, max_attempts=1)
    async def hang() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    job = await hang.enqueue()
    started = time.monotonic()
    await run_until_idle(tr)

    assert time.monotonic() - started < 5
    failed = await tr.get_job(job.id)
    assert failed is not None
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert failed.last_error is not None
    assert "timeout" in failed.last_error.lower()
    assert cancelled == [True]


async def test_an_async_timeout_is_retried_like_any_other_failure(tr: TaskRunner):
    attempts: list[int] = []

    @tr.task(timeout=0.2, retry=FAST_RETRY)
    async def slow_once() -> int:
        ctx = current_job()
        assert ctx is not None
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            await asyncio.sleep(30)
        return ctx.attempt

    job = await slow_once.enqueue()
    async with background_worker(tr):
        assert await tr.result(job.id, timeout=10) == 2
    assert attempts == [1, 2]


@pytest.mark.parametrize("executor", ["async", "thread"])
async def test_a_handlers_own_timeout_error_is_reported_as_itself(tr: TaskRunner, executor: str):
    if executor == "async":

        async def raises_timeout() -> None:
            raise TimeoutError("the remote service timed out")

    else:

        def raises_timeout() -> None:
            raise TimeoutError("the remote service timed out")

    task = tr.task(max_attempts=1)(raises_timeout)
    job = await task.enqueue()
    await run_until_idle(tr)

    failed = await tr.get_job(job.id)
    assert failed is not None
    assert failed.status is JobStatus.FAILED
    assert failed.last_error is not None
    assert failed.last_error.startswith("TimeoutError: the remote service timed out")


@pytest.mark.parametrize("executor", ["async", "thread", "process"])
async def test_the_jobs_request_id_is_the_current_request_id_in_every_executor(
    tr: TaskRunner, executor: str
):
    def both() -> list[str | None]:
        ctx = current_job()
        assert ctx is not None
        return [ctx.request_id, current_request_id()]

    if executor == "async":

        async def rid_async() -> list[str | None]:
            return both()

        task = tr.task(name="rid.async")(rid_async)
    elif executor == "thread":

        def rid_thread() -> list[str | None]:
            return both()

        task = tr.task(name="rid.thread")(rid_thread)
    else:
        task = tr.task(executor="process")(process_tasks.request_ids.func)

    with request_context("req-outer"):
        job = await task.enqueue()
    await run_until_idle(tr, process_pool_size=1)

    assert job.request_id == "req-outer"
    assert await tr.result(job.id, timeout=10) == ["req-outer", "req-outer"]
    assert current_request_id() is None, "the handler's request id did not leak out"


async def test_a_job_enqueued_from_a_handler_inherits_the_handlers_request_id(tr: TaskRunner):
    @tr.task
    async def child() -> None:
        pass

    @tr.task
    async def parent() -> int:
        spawned = await child.enqueue()
        return spawned.id

    job = await parent.enqueue(request_id="req-parent")
    await run_until_idle(tr)

    child_id = await tr.result(job.id, timeout=10)
    spawned = await tr.get_job(child_id)
    assert spawned is not None
    assert (spawned.request_id, spawned.status) == ("req-parent", JobStatus.SUCCEEDED)


async def test_a_thread_task_past_its_timeout_is_not_run_again_while_its_thread_still_runs(
    tr: TaskRunner,
):
    spans: dict[int, list[float]] = {}

    @tr.task(timeout=0.2, retry=Retry(max_attempts=2, wait=tenacity.wait_fixed(0)))
    def slow_first() -> int:
        ctx = current_job()
        assert ctx is not None
        spans[ctx.attempt] = [time.monotonic()]
        try:
            if ctx.attempt == 1:
                time.sleep(1.0)
            return ctx.attempt
        finally:
            spans[ctx.attempt].append(time.monotonic())

    job = await slow_first.enqueue()
    async with background_worker(tr):
        done = await tr.wait(job.id, timeout=10)
        await eventually(lambda: len(spans.get(1, [])) == 2, message="first thread ended")

    assert done.status is JobStatus.SUCCEEDED
    overlap = spans[1][1] - spans[2][0]
    assert overlap <= 0, f"attempt 2 started {overlap:.2f}s before attempt 1's thread ended"


async def test_a_thread_task_past_its_timeout_fails_that_attempt(tr: TaskRunner):
    @tr.task(timeout=0.2, max_attempts=1)
    def too_slow() -> None:
        time.sleep(0.6)

    job = await too_slow.enqueue()
    await run_until_idle(tr)

    failed = await tr.get_job(job.id)
    assert failed is not None
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert failed.last_error is not None
    assert "timeout" in failed.last_error.lower()
