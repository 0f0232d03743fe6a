"""Logging: everything goes through the "taskrunner" logger, and every record about a job
carries job_id, task and request_id as record attributes."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import tenacity

from taskrunner import PermanentFailure, Retry, Task, TaskRunner
from taskrunner.queue import Completion

Work = Callable[..., Awaitable[None]]
FAST_RETRY = Retry(max_attempts=3, wait=tenacity.wait_fixed(0))


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def taskrunner_log() -> Iterator[list[logging.LogRecord]]:
    """Records that reach the "taskrunner" logger itself, at every level."""
    logger = logging.getLogger("taskrunner")
    handler = Collect()
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def about_job(records: list[logging.LogRecord], job_id: int) -> list[logging.LogRecord]:
    """Records whose message is about job `job_id`."""
    pattern = re.compile(rf"\bjob {job_id}\b")
    return [r for r in records if pattern.search(r.getMessage())]


def ids_of(record: logging.LogRecord) -> tuple[object, object, object]:
    return (
        getattr(record, "job_id", None),
        getattr(record, "task", None),
        getattr(record, "request_id", None),
    )


async def test_the_runner_logs_through_the_taskrunner_logger(
    runner: TaskRunner, work: Work, taskrunner_log: list[logging.LogRecord]
):
    @runner.task(retry=FAST_RETRY)
    async def flaky() -> None:
        raise RuntimeError("boom")

    job = await flaky.enqueue()
    await work()

    assert about_job(taskrunner_log, job.id)
    assert all(r.name.split(".")[0] == "taskrunner" for r in taskrunner_log)


def fails_once(runner: TaskRunner) -> Task[..., Any]:
    """A task whose first attempt raises and whose second succeeds."""
    calls: list[int] = []

    @runner.task(retry=FAST_RETRY)
    async def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")

    return flaky


async def test_a_failed_attempts_warning_carries_job_id_task_and_request_id(
    runner: TaskRunner, work: Work, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="taskrunner")
    flaky = fails_once(runner)

    job = await flaky.enqueue(request_id="req-log")
    await work()

    (warning,) = [r for r in about_job(caplog.records, job.id) if r.levelno == logging.WARNING]
    assert ids_of(warning) == (job.id, flaky.name, "req-log")


async def test_a_final_failures_error_carries_job_id_task_and_request_id(
    runner: TaskRunner, work: Work, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="taskrunner")

    @runner.task
    async def doomed() -> None:
        raise PermanentFailure("never works")

    job = await doomed.enqueue(request_id="req-doomed")
    await work()

    (error,) = [r for r in about_job(caplog.records, job.id) if r.levelno == logging.ERROR]
    assert ids_of(error) == (job.id, doomed.name, "req-doomed")


async def test_a_jobs_end_is_one_info_line_with_task_outcome_and_duration(
    runner: TaskRunner, work: Work, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="taskrunner")

    @runner.task
    async def quick() -> int:
        await asyncio.sleep(0.05)
        return 1

    job = await quick.enqueue(request_id="req-end")
    await work()

    (line,) = [r for r in about_job(caplog.records, job.id) if r.levelno == logging.INFO]
    message = line.getMessage()
    assert message.startswith(f"job {job.id} {quick.name} succeeded in ")
    took = float(re.search(r"succeeded in ([0-9.]+)s", message).group(1))  # type: ignore[union-attr]
    assert 0.05 <= took < 5.0
    assert ids_of(line) == (job.id, quick.name, "req-end")


async def test_a_failed_attempts_line_names_the_task_and_its_duration(
    runner: TaskRunner, work: Work, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="taskrunner")
    flaky = fails_once(runner)

    job = await flaky.enqueue()
    await work()

    (warning,) = [r for r in about_job(caplog.records, job.id) if r.levelno == logging.WARNING]
    assert re.match(
        rf"job {job.id} {re.escape(flaky.name)} failed in [0-9.]+s \(attempt 1 of 3\): "
        "RuntimeError: first attempt fails; retrying in",
        warning.getMessage(),
    )


async def test_every_record_of_a_job_run_carries_its_ids(
    runner: TaskRunner, work: Work, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="taskrunner")
    flaky = fails_once(runner)

    job = await flaky.enqueue(request_id="req-all")
    await work()

    records = about_job(caplog.records, job.id)
    assert len(records) >= 2  # at least a start and the failed attempt
    assert {ids_of(r) for r in records} == {(job.id, flaky.name, "req-all")}


async def test_a_job_rescued_from_a_dead_worker_is_logged_with_its_ids(
    runner: TaskRunner, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG, logger="taskrunner")

    @runner.task(lease=0.2)
    async def handler() -> None: ...

    job = await handler.enqueue(request_id="req-rescued")
    await runner.job_queue.claim([handler.name], limit=1, owner="dead", lease=0.2)
    await asyncio.sleep(0.3)
    await runner.job_queue.rescue_expired()

    records = about_job(caplog.records, job.id)
    assert records
    assert {ids_of(r) for r in records} == {(job.id, handler.name, "req-rescued")}


async def test_an_ack_of_a_lost_lease_is_returned_to_the_caller_not_logged_by_the_bare_queue(
    runner: TaskRunner, caplog: pytest.LogCaptureFixture
):
    # The bare queue knows only ids; the worker, which knows the job, logs the loss.
    caplog.set_level(logging.DEBUG, logger="taskrunner")

    @runner.task(lease=0.2)
    async def handler() -> None: ...

    job = await handler.enqueue(request_id="req-late")
    (claimed,) = await runner.job_queue.claim([handler.name], limit=1, owner="slow", lease=0.2)
    await asyncio.sleep(0.3)
    await runner.job_queue.rescue_expired()  # the slow worker's lease is gone
    caplog.clear()

    result = await runner.job_queue.complete_many([Completion(lease=claimed.lease)])

    assert result.lost == [claimed.lease]
    assert about_job(caplog.records, job.id) == []


async def test_a_lease_lost_while_running_is_logged_with_the_jobs_ids(
    runner: TaskRunner,
    run_until_idle: Callable[[TaskRunner], Awaitable[None]],
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.DEBUG, logger="taskrunner")
    started = asyncio.Event()

    @runner.task(lease=0.3)
    async def slow() -> None:
        started.set()
        await asyncio.sleep(30)

    job = await slow.enqueue(request_id="req-stolen")
    worker = asyncio.create_task(run_until_idle(runner))
    await asyncio.wait_for(started.wait(), 10)
    # Another worker takes the job over: this worker's lease is no longer held.
    await runner.job_queue.db.execute(
        f'UPDATE "{runner.schema}".jobs SET lease_id = lease_id + 1000000, '
        "lease_owner = 'thief' WHERE id = $1",
        job.id,
    )
    await asyncio.wait_for(worker, 10)

    records = about_job(caplog.records, job.id)
    assert any("lost" in r.getMessage() for r in records)
    assert {ids_of(r) for r in records} == {(job.id, slow.name, "req-stolen")}
