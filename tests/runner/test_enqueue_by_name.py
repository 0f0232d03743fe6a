"""Enqueue by name without importing the task: an explicit opt-in writes the call
unchecked, and the worker that has the task checks it when it runs it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from taskrunner import InvalidArguments, JobStatus, TaskRunner, UnknownTask

Work = Callable[..., Awaitable[None]]


@pytest.fixture
async def web(pg_dsn: str, runner: TaskRunner) -> AsyncIterator[TaskRunner]:
    """A producer that knows no task, on the worker runner's schema."""
    async with TaskRunner(pg_dsn, schema=runner.schema, strict_names=False) as producer:
        yield producer


def register_build(runner: TaskRunner) -> None:
    @runner.task(name="reports.build")
    async def build(report_id: int, fmt: str = "pdf") -> str:
        return f"{report_id}.{fmt}"


async def test_a_strict_runner_refuses_a_name_it_does_not_know(runner: TaskRunner, count_jobs):
    with pytest.raises(UnknownTask):
        await runner.enqueue("reports.build", 42)
    assert await count_jobs() == 0


async def test_with_strict_names_off_an_unregistered_name_is_enqueued_and_run_by_its_worker(
    web: TaskRunner, runner: TaskRunner, work: Work
):
    register_build(runner)

    job = await web.enqueue("reports.build", 42, fmt="csv")
    await work()

    assert (job.task, job.args, job.kwargs, job.queue) == (
        "reports.build",
        [42],
        {"fmt": "csv"},
        "default",
    )
    assert await runner.result(job.id, timeout=5) == "42.csv"


async def test_enqueue_by_name_works_on_a_strict_runner_and_in_batches_too(
    runner: TaskRunner, work: Work
):
    job = await runner.enqueue_by_name("reports.build", 7, queue="default", priority=3)
    register_build(runner)
    many = await runner.enqueue_many("reports.build", [(1,), {"report_id": 2}])
    await work()

    assert job.priority == 3
    assert [await runner.result(j.id, timeout=5) for j in (job, *many)] == [
        "7.pdf",
        "1.pdf",
        "2.pdf",
    ]


async def test_a_registered_task_enqueued_by_name_is_still_checked(
    runner: TaskRunner, count_jobs
):
    register_build(runner)

    with pytest.raises(InvalidArguments):
        await runner.enqueue_by_name("reports.build", "not a number")
    assert await count_jobs() == 0


async def test_arguments_that_do_not_fit_fail_the_job_when_it_runs_without_retries(
    web: TaskRunner, runner: TaskRunner, work: Work
):
    register_build(runner)

    job = await web.enqueue("reports.build", "not a number", pages=3)
    await work()

    failed = await runner.get_job(job.id)
    assert failed is not None
    assert (failed.status, failed.attempts, failed.max_attempts) == (JobStatus.FAILED, 1, 5)
    assert "unexpected keyword argument 'pages'" in (failed.last_error or "")


async def test_arguments_json_cannot_carry_are_refused_at_enqueue(web: TaskRunner, count_jobs):
    with pytest.raises(InvalidArguments):
        await web.enqueue("reports.build", object())
    assert await count_jobs() == 0


async def test_an_idempotency_key_deduplicates_calls_by_name(web: TaskRunner):
    first = await web.enqueue("reports.build", 42, idempotency_key="r-42")
    again = await web.enqueue_by_name("reports.build", 42, idempotency_key="r-42")

    assert (again.id, again.deduplicated) == (first.id, True)


async def test_a_name_must_be_a_non_empty_string(web: TaskRunner):
    with pytest.raises(InvalidArguments):
        await web.enqueue_by_name("", 1)
