"""run_until_idle: a worker in the test until nothing is runnable; the jobs it ran."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import tenacity

from taskrunner import JobStatus, Retry, RetryLater, TaskRunner, TaskRunnerError, current_job
from taskrunner.testing import fresh_schema, run_until_idle

NO_WAIT = Retry(max_attempts=3, wait=tenacity.wait_fixed(0))


@pytest.fixture
async def runner(pg_dsn: str) -> AsyncIterator[TaskRunner]:
    app = TaskRunner(schema="app")

    @app.task(name="app.double")
    async def double(n: int) -> int:
        return 2 * n

    @app.task(name="app.fan_out")
    async def fan_out(n: int) -> None:
        for i in range(n):
            await double.enqueue(i)

    @app.task(name="app.flaky", retry=NO_WAIT)
    async def flaky() -> str:
        ctx = current_job()
        assert ctx is not None
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "second time lucky"

    @app.task(name="app.forever", retry=Retry(max_attempts=10_000))
    async def forever() -> None:
        raise RetryLater(0)

    async with fresh_schema(app, dsn=pg_dsn):
        yield app


async def test_it_returns_the_jobs_it_ran_in_their_final_status_in_the_order_they_started(
    runner: TaskRunner,
) -> None:
    enqueued = [await runner.enqueue("app.double", n) for n in (1, 2, 3)]
    ran = await run_until_idle(runner, concurrency=1)
    assert [j.id for j in ran] == [j.id for j in enqueued]
    assert [(j.status, j.result) for j in ran] == [(JobStatus.SUCCEEDED, n) for n in (2, 4, 6)]


async def test_jobs_enqueued_by_handlers_run_too(runner: TaskRunner) -> None:
    await runner.enqueue("app.fan_out", 3)
    ran = await run_until_idle(runner)
    assert sorted(j.task for j in ran) == ["app.double"] * 3 + ["app.fan_out"]
    assert {j.status for j in ran} == {JobStatus.SUCCEEDED}


async def test_a_retried_job_is_returned_once_after_its_last_attempt(runner: TaskRunner) -> None:
    await runner.enqueue("app.flaky")
    (job,) = await run_until_idle(runner)
    assert (job.status, job.attempts, job.result) == (JobStatus.SUCCEEDED, 2, "second time lucky")


async def test_delayed_jobs_do_not_keep_it_running_and_are_not_returned(
    runner: TaskRunner,
) -> None:
    later = await runner.enqueue("app.double", 1, delay=3600)
    assert await run_until_idle(runner) == []
    job = await runner.get_job(later.id)
    assert job is not None
    assert job.status is JobStatus.QUEUED


async def test_nothing_to_run_returns_no_jobs(runner: TaskRunner) -> None:
    assert await run_until_idle(runner) == []


async def test_a_job_that_never_ends_makes_it_time_out(runner: TaskRunner) -> None:
    await runner.enqueue("app.forever")
    with pytest.raises(TimeoutError, match=r"still had jobs to run after 0\.5s"):
        await run_until_idle(runner, timeout=0.5)


async def test_it_leaves_the_runner_s_middleware_as_it_was(runner: TaskRunner) -> None:
    before = runner.middlewares
    await runner.enqueue("app.double", 1)
    await run_until_idle(runner)
    assert runner.middlewares == before


async def test_a_closed_runner_is_refused() -> None:
    with pytest.raises(TaskRunnerError, match="needs an open runner"):
        await run_until_idle(TaskRunner(schema="app"))
