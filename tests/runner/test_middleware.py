"""Middleware around every attempt, in all three executors (API.md, "Middleware")."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import process_tasks
import pytest
import tenacity
from worker_helpers import run_until_idle

from taskrunner import (
    InvalidArguments,
    JobContext,
    JobStatus,
    LogAttempts,
    PermanentFailure,
    Retry,
    RetryLater,
    TaskRunner,
    current_job,
    request_context,
)

CallNext = Callable[[], Awaitable[Any]]


def register_add(tr: TaskRunner, executor: str) -> Any:
    if executor == "process":
        return tr.task(executor="process")(process_tasks.add.func)
    if executor == "thread":

        @tr.task(name="add", executor="thread")
        def add_thread(a: int, b: int) -> int:
            return a + b

        return add_thread

    @tr.task(name="add")
    async def add(a: int, b: int) -> int:
        return a + b

    return add


@pytest.mark.parametrize("executor", ["async", "thread", "process"])
async def test_a_middleware_wraps_every_attempt_in_every_executor(
    tr: TaskRunner, executor: str
):
    seen: list[tuple[int, int, Any]] = []

    @tr.middleware
    async def record(job: JobContext, call_next: CallNext) -> Any:
        value = await call_next()
        seen.append((job.job_id, job.attempt, value))
        return value

    add = register_add(tr, executor)
    first = await add.enqueue(40, 2)
    second = await add.enqueue(1, 1)
    await run_until_idle(tr, process_pool_size=1)

    assert sorted(seen) == [(first.id, 1, 42), (second.id, 1, 2)]
    assert await tr.result(first.id, timeout=10) == 42


async def test_the_first_registered_middleware_is_the_outermost(pg_dsn: str, schema: str):
    order: list[str] = []

    def named(name: str) -> Callable[[JobContext, CallNext], Awaitable[Any]]:
        async def mw(job: JobContext, call_next: CallNext) -> Any:
            order.append(f"{name} in")
            try:
                return await call_next()
            finally:
                order.append(f"{name} out")

        return mw

    async with TaskRunner(pg_dsn, schema=schema, middleware=[named("a"), named("b")]) as tr:
        tr.middleware(named("c"))

        @tr.task(name="noop")
        async def noop() -> None:
            order.append("handler")

        await noop.enqueue()
        await run_until_idle(tr)

    assert order == ["a in", "b in", "c in", "handler", "c out", "b out", "a out"]


async def test_what_a_middleware_returns_is_the_attempts_result(tr: TaskRunner):
    @tr.middleware
    async def double(job: JobContext, call_next: CallNext) -> Any:
        return 2 * await call_next()

    add = register_add(tr, "async")
    job = await add.enqueue(20, 1)
    await run_until_idle(tr)

    assert await tr.result(job.id, timeout=10) == 42


async def test_a_middleware_that_never_calls_call_next_skips_the_handler(tr: TaskRunner):
    ran: list[int] = []

    @tr.middleware
    async def short_circuit(job: JobContext, call_next: CallNext) -> Any:
        return "skipped"

    @tr.task(name="handler")
    async def handler() -> str:
        ran.append(1)
        return "ran"

    job = await handler.enqueue()
    await run_until_idle(tr)

    assert ran == []
    assert await tr.result(job.id, timeout=10) == "skipped"


async def test_what_a_middleware_raises_fails_the_attempt_and_is_retried(tr: TaskRunner):
    @tr.middleware
    async def flaky(job: JobContext, call_next: CallNext) -> Any:
        if job.attempt == 1:
            raise ConnectionError("first attempt refused by the middleware")
        return await call_next()

    @tr.task(name="fine", retry=Retry(max_attempts=3, wait=tenacity.wait_none()))
    async def fine() -> str:
        return "ok"

    job = await fine.enqueue()
    await run_until_idle(tr)

    done = await tr.get_job(job.id)
    assert done is not None
    assert (done.status, done.attempts, done.result) == (JobStatus.SUCCEEDED, 2, "ok")


async def test_permanent_failure_from_a_middleware_fails_the_job_without_retries(
    tr: TaskRunner,
):
    @tr.middleware
    async def refuse(job: JobContext, call_next: CallNext) -> Any:
        raise PermanentFailure("not allowed")

    @tr.task(name="fine", retry=Retry(max_attempts=5, wait=tenacity.wait_none()))
    async def fine() -> str:
        return "ok"

    job = await fine.enqueue()
    await run_until_idle(tr)

    done = await tr.get_job(job.id)
    assert done is not None
    assert (done.status, done.attempts) == (JobStatus.FAILED, 1)
    assert "not allowed" in (done.last_error or "")


async def test_retry_later_from_a_middleware_puts_the_job_back_for_later(tr: TaskRunner):
    @tr.middleware
    async def later(job: JobContext, call_next: CallNext) -> Any:
        raise RetryLater(3600)

    @tr.task(name="fine", retry=Retry(max_attempts=5, wait=tenacity.wait_none()))
    async def fine() -> str:
        return "ok"

    job = await fine.enqueue()
    await run_until_idle(tr)

    done = await tr.get_job(job.id)
    assert done is not None
    assert (done.status, done.attempts) == (JobStatus.QUEUED, 1)


async def test_a_middleware_calling_call_next_twice_fails_the_attempt_and_runs_it_once(
    tr: TaskRunner,
):
    ran: list[int] = []

    @tr.middleware
    async def twice(job: JobContext, call_next: CallNext) -> Any:
        await call_next()
        return await call_next()

    @tr.task(name="once", max_attempts=1)
    async def once() -> None:
        ran.append(1)

    job = await once.enqueue()
    await run_until_idle(tr)

    done = await tr.get_job(job.id)
    assert done is not None
    assert done.status == JobStatus.FAILED
    assert "call_next twice" in (done.last_error or "")
    assert ran == [1]


async def test_a_middleware_sees_the_running_job_and_its_request_id(tr: TaskRunner):
    seen: list[tuple[int | None, str | None]] = []

    @tr.middleware
    async def look(job: JobContext, call_next: CallNext) -> Any:
        running = current_job()
        seen.append((running.job_id if running else None, running and running.request_id))
        return await call_next()

    add = register_add(tr, "thread")
    with request_context("req-7"):
        job = await add.enqueue(1, 2)
    await run_until_idle(tr)

    assert seen == [(job.id, "req-7")]


@pytest.mark.parametrize("bad", [lambda job, call_next: None, "not callable", 42])
def test_a_middleware_that_is_not_an_async_function_is_refused_when_registered(
    pg_dsn: str, bad: Any
):
    runner = TaskRunner(pg_dsn, schema="t_never_opened")

    with pytest.raises(InvalidArguments, match="async function taking"):
        runner.middleware(bad)
    with pytest.raises(InvalidArguments, match="async function taking"):
        TaskRunner(pg_dsn, schema="t_never_opened", middleware=[bad])


def test_middleware_given_as_something_other_than_a_list_is_refused(pg_dsn: str):
    with pytest.raises(InvalidArguments, match="list of middleware"):
        TaskRunner(pg_dsn, schema="t_never_opened", middleware=LogAttempts())  # type: ignore[arg-type]


async def test_log_attempts_logs_each_attempts_outcome_and_duration_with_the_job_ids(
    tr: TaskRunner, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="taskrunner.attempts")
    tr.middleware(LogAttempts())

    @tr.task(name="boom", max_attempts=1)
    async def boom() -> None:
        raise ValueError("boom")

    add = register_add(tr, "async")
    ok = await add.enqueue(1, 1)
    bad = await boom.enqueue()
    await run_until_idle(tr)

    records = {r.job_id: r for r in caplog.records if r.name == "taskrunner.attempts"}  # type: ignore[attr-defined]
    assert set(records) == {ok.id, bad.id}
    assert records[ok.id].outcome == "succeeded"  # type: ignore[attr-defined]
    assert records[bad.id].outcome == "failed (ValueError)"  # type: ignore[attr-defined]
    assert f"job {ok.id} add attempt 1 of" in records[ok.id].getMessage()
    assert records[ok.id].duration >= 0  # type: ignore[attr-defined]


async def test_log_attempts_warns_about_attempts_slower_than_its_threshold(
    tr: TaskRunner, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="taskrunner.attempts")
    tr.middleware(LogAttempts(slow_after=0.0))
    add = register_add(tr, "async")
    await add.enqueue(1, 1)
    await run_until_idle(tr)

    (record,) = [r for r in caplog.records if r.name == "taskrunner.attempts"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().endswith("(slow)")
