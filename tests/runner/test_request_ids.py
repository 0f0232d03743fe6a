"""Request ids: from the context, explicit, or generated; carried into handlers, into jobs
enqueued by handlers, and through retries and crash recovery."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import tenacity

import taskrunner
from taskrunner import JobStatus, Retry, TaskRunner

Work = Callable[..., Awaitable[None]]
# No wait: a worker run until idle stops at a retry that is not due yet.
FAST_RETRY = Retry(max_attempts=3, wait=tenacity.wait_fixed(0))


# ---- at enqueue ----------------------------------------------------------------------


async def test_a_job_enqueued_in_a_request_context_carries_its_id(runner: TaskRunner):
    @runner.task
    async def ping() -> None: ...

    with taskrunner.request_context("req-42"):
        job = await runner.enqueue(ping)

    assert job.request_id == "req-42"


async def test_an_explicit_request_id_wins_over_the_context(runner: TaskRunner):
    @runner.task
    async def ping() -> None: ...

    with taskrunner.request_context("req-42"):
        job = await ping.enqueue(request_id="req-explicit")

    assert job.request_id == "req-explicit"


async def test_without_a_request_id_each_job_gets_a_new_one(runner: TaskRunner):
    @runner.task
    async def ping() -> None: ...

    first = await ping.enqueue()
    second = await ping.enqueue()

    assert first.request_id
    assert second.request_id
    assert first.request_id != second.request_id


async def test_enqueue_many_in_a_request_context_gives_every_job_its_id(runner: TaskRunner):
    @runner.task
    async def build(report_id: int) -> None: ...

    with taskrunner.request_context("req-batch"):
        jobs = await runner.enqueue_many(build, [(1,), (2,)])

    assert [j.request_id for j in jobs] == ["req-batch", "req-batch"]


# ---- the context itself --------------------------------------------------------------


def test_current_request_id_reads_the_request_context():
    with taskrunner.request_context("req-42"):
        assert taskrunner.current_request_id() == "req-42"


def test_outside_any_context_there_is_no_current_request_id():
    assert taskrunner.current_request_id() is None


def test_leaving_a_nested_request_context_restores_the_outer_one():
    with taskrunner.request_context("outer"):
        with taskrunner.request_context("inner"):
            assert taskrunner.current_request_id() == "inner"
        assert taskrunner.current_request_id() == "outer"
    assert taskrunner.current_request_id() is None


def test_a_request_context_without_an_id_generates_one():
    with taskrunner.request_context() as generated:
        assert generated
        assert taskrunner.current_request_id() == generated


def test_request_contexts_without_an_id_generate_different_ones():
    with taskrunner.request_context() as first:
        pass
    with taskrunner.request_context() as second:
        pass

    assert first != second


async def test_a_job_enqueued_in_a_generated_request_context_carries_that_id(
    runner: TaskRunner,
):
    @runner.task
    async def ping() -> None: ...

    with taskrunner.request_context() as generated:
        job = await ping.enqueue()

    assert job.request_id == generated


async def test_the_request_context_is_per_asyncio_task(runner: TaskRunner):
    @runner.task
    async def ping() -> None: ...

    async def enqueue_in(request_id: str) -> str | None:
        with taskrunner.request_context(request_id):
            await asyncio.sleep(0.01)
            return (await ping.enqueue()).request_id

    assert await asyncio.gather(enqueue_in("a"), enqueue_in("b")) == ["a", "b"]


# ---- inside a handler ----------------------------------------------------------------


@pytest.mark.parametrize("executor", ["async", "thread"])
async def test_inside_a_handler_the_current_request_id_is_the_jobs(
    runner: TaskRunner, work: Work, executor: str
):
    seen: list[str | None] = []

    if executor == "async":

        @runner.task
        async def handler() -> None:
            seen.append(taskrunner.current_request_id())

    else:

        @runner.task
        def handler() -> None:
            seen.append(taskrunner.current_request_id())

    job = await runner.enqueue(handler, request_id="req-handler")
    await work()

    assert seen == [job.request_id] == ["req-handler"]


async def test_current_job_in_a_handler_carries_the_jobs_request_id(runner: TaskRunner, work: Work):
    seen: list[str | None] = []

    @runner.task
    async def handler() -> None:
        ctx = taskrunner.current_job()
        seen.append(ctx.request_id if ctx is not None else None)

    with taskrunner.request_context("req-7"):
        await handler.enqueue()
    await work()

    assert seen == ["req-7"]


async def test_a_job_enqueued_from_a_handler_inherits_its_request_id(
    runner: TaskRunner, work: Work
):
    children: list[int] = []

    @runner.task
    async def child(n: int) -> None: ...

    @runner.task
    async def parent() -> None:
        children.append((await child.enqueue(1)).id)

    await parent.enqueue(request_id="req-parent")
    await work()

    (child_id,) = children
    stored = await runner.get_job(child_id)
    assert stored is not None
    assert (stored.request_id, stored.status) == ("req-parent", JobStatus.SUCCEEDED)


async def test_the_request_id_is_kept_through_a_retry(runner: TaskRunner, work: Work):
    seen: list[str | None] = []

    @runner.task(retry=FAST_RETRY)
    async def flaky() -> None:
        seen.append(taskrunner.current_request_id())
        if len(seen) == 1:
            raise RuntimeError("first attempt fails")

    job = await flaky.enqueue(request_id="req-retry")
    await work()

    done = await runner.get_job(job.id)
    assert done is not None
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 2)
    assert seen == ["req-retry", "req-retry"]
    assert done.request_id == "req-retry"


async def test_a_job_enqueued_on_a_retry_inherits_the_request_id(runner: TaskRunner, work: Work):
    children: list[int] = []

    @runner.task
    async def child() -> None: ...

    @runner.task(retry=FAST_RETRY)
    async def flaky() -> None:
        attempt = taskrunner.current_job()
        assert attempt is not None
        if attempt.attempt == 1:
            raise RuntimeError("first attempt fails")
        children.append((await child.enqueue()).id)

    await flaky.enqueue(request_id="req-retry")
    await work()

    (child_id,) = children
    stored = await runner.get_job(child_id)
    assert stored is not None
    assert stored.request_id == "req-retry"


async def test_a_job_recovered_from_a_dead_worker_keeps_its_request_id(
    runner: TaskRunner, work: Work
):
    seen: list[str | None] = []

    @runner.task(lease=0.2)
    async def handler() -> None:
        seen.append(taskrunner.current_request_id())

    job = await handler.enqueue(request_id="req-crash")
    # A worker claims it and dies: its lease runs out and the job is rescued.
    (claimed,) = await runner.job_queue.claim([handler.name], limit=1, owner="dead", lease=0.2)
    await asyncio.sleep(0.3)
    assert (claimed.id, "queued") in await runner.job_queue.rescue_expired()
    await work()

    done = await runner.get_job(job.id)
    assert done is not None
    assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 2)
    assert seen == ["req-crash"]
