"""Whatever a handler raises, that attempt fails and nothing else: an exception whose
str() raises, a retry policy that raises, SystemExit, KeyboardInterrupt or any other
BaseException, from the event loop or a thread. The job gets an outcome, the worker goes
on to the next job, and no task is left with an exception nobody retrieved."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tenacity
from tenacity.wait import wait_base
from worker_helpers import run_until_idle

from taskrunner import JobStatus, Retry, TaskRunner


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for this one")


class NotAString(Exception):
    def __str__(self) -> Any:
        return 42


class Custom(BaseException):
    pass


class RaisingWait(wait_base):
    """A wait strategy that fails when asked for a delay after a handler's ValueError
    (and passes the probe of its declaration, which a strategy failing always would not)."""

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        if outcome is not None and isinstance(outcome.exception(), ValueError):
            raise ZeroDivisionError("no delay for you")
        return 0.0


@pytest.fixture
async def unretrieved() -> AsyncIterator[list[dict[str, Any]]]:
    """Errors the event loop reports about tasks (e.g. "Task exception was never
    retrieved"), collected for the test."""
    loop = asyncio.get_running_loop()
    found: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: found.append(context))
    yield found
    loop.set_exception_handler(previous)


@pytest.mark.parametrize("error", [Unprintable, NotAString], ids=["str-raises", "str-not-str"])
async def test_an_exception_whose_str_fails_fails_the_job_and_the_worker_reaches_idle(
    tr: TaskRunner, error: type[Exception], unretrieved: list[dict[str, Any]]
):
    @tr.task(max_attempts=1)
    async def raises_badly() -> None:
        raise error()

    job = await raises_badly.enqueue()
    await run_until_idle(tr, timeout=20)
    gc.collect()  # a task's unretrieved exception is reported when the task is collected

    failed = await tr.get_job(job.id)
    assert failed is not None
    assert failed.status is JobStatus.FAILED
    assert failed.last_error is not None
    assert failed.last_error.startswith(f"{error.__name__}: <{error.__name__}")
    assert unretrieved == []


async def test_a_retry_policy_that_raises_fails_the_attempt_without_retry(
    tr: TaskRunner, caplog: pytest.LogCaptureFixture
):
    @tr.task(retry=Retry(max_attempts=3, wait=RaisingWait()))
    async def flaky() -> None:
        raise ValueError("first")

    job = await flaky.enqueue()
    with caplog.at_level(logging.ERROR, logger="taskrunner"):
        await run_until_idle(tr, timeout=20)

    failed = await tr.get_job(job.id)
    assert failed is not None
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert failed.last_error is not None
    assert failed.last_error.startswith("ValueError: first")
    assert any("retry policy" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("executor", ["async", "thread"])
@pytest.mark.parametrize(
    "error",
    [SystemExit, KeyboardInterrupt, Custom],
    ids=["SystemExit", "KeyboardInterrupt", "custom"],
)
async def test_a_base_exception_from_a_handler_fails_that_attempt_only_and_the_worker_goes_on(
    tr: TaskRunner, executor: str, error: type[BaseException], caplog: pytest.LogCaptureFixture
):
    if executor == "async":

        @tr.task(name="ends", max_attempts=1)
        async def ends_async() -> None:
            raise error()

    else:

        @tr.task(name="ends", max_attempts=1, executor="thread")
        def ends_thread() -> None:
            raise error()

    @tr.task
    async def fine(value: int) -> int:
        return value

    bad = await tr.enqueue("ends")
    good = [await fine.enqueue(i) for i in range(3)]
    with caplog.at_level(logging.INFO, logger="taskrunner"):
        await run_until_idle(tr, timeout=20, concurrency=1)

    failed = await tr.get_job(bad.id)
    assert failed is not None
    assert failed.status is JobStatus.FAILED
    assert failed.last_error is not None
    assert failed.last_error.startswith(error.__name__)
    assert [await tr.result(job.id) for job in good] == [0, 1, 2]
    assert not any("another worker took" in r.getMessage() for r in caplog.records)


async def test_a_handlers_own_cancelled_error_fails_its_attempt(tr: TaskRunner):
    @tr.task(max_attempts=1)
    async def cancels_itself() -> None:
        raise asyncio.CancelledError()

    job = await cancels_itself.enqueue()
    await run_until_idle(tr, timeout=20)

    failed = await tr.get_job(job.id)
    assert failed is not None
    assert failed.status is JobStatus.FAILED
    assert failed.last_error is not None
    assert failed.last_error.startswith("CancelledError")
