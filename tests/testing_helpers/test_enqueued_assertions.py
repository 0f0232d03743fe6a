"""assert_enqueued, assert_not_enqueued, enqueued_jobs: what a test can say was enqueued."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from unittest.mock import ANY

import pytest

from taskrunner import JobStatus, TaskRunner, UnknownTask
from taskrunner.testing import (
    assert_enqueued,
    assert_not_enqueued,
    enqueued_jobs,
    fresh_schema,
)
from taskrunner.testing import assertions as assertions_module

app = TaskRunner(schema="app")


@app.task(name="app.send_email")
async def send_email(to: str, template: str = "welcome") -> None: ...


@app.task(name="app.remind")
async def remind(at: datetime, *, times: int = 1) -> None: ...


@pytest.fixture
async def runner(pg_dsn: str) -> AsyncIterator[TaskRunner]:
    async with fresh_schema(app, dsn=pg_dsn):
        yield app


async def test_a_call_matches_whether_its_arguments_were_given_by_position_or_by_name(
    runner: TaskRunner,
) -> None:
    job = await send_email.enqueue(to="a@b.c")
    assert (await assert_enqueued(runner, send_email, "a@b.c")).id == job.id
    await assert_enqueued(runner, send_email, "a@b.c", "welcome")
    await assert_enqueued(runner, send_email, to="a@b.c", template="welcome")


async def test_other_arguments_fail_and_the_message_lists_what_was_enqueued(
    runner: TaskRunner,
) -> None:
    await send_email.enqueue("a@b.c", template="reset")
    with pytest.raises(AssertionError) as failed:
        await assert_enqueued(runner, send_email, "a@b.c")
    message = str(failed.value)
    assert "no job of app.send_email ('a@b.c') was enqueued" in message
    assert "'a@b.c'" in message
    assert "template='reset'" in message


async def test_any_matches_any_value_of_one_argument(runner: TaskRunner) -> None:
    await send_email.enqueue("a@b.c", template="reset")
    await assert_enqueued(runner, send_email, "a@b.c", template=ANY)
    await assert_not_enqueued(runner, send_email, "x@y.z", template=ANY)


async def test_values_are_compared_as_the_handler_gets_them(runner: TaskRunner) -> None:
    at = datetime(2026, 1, 8, 9, 30, tzinfo=UTC)
    await remind.enqueue(at, times=2)
    await assert_enqueued(runner, remind, at, times=2)
    await assert_not_enqueued(runner, remind, at)  # times=1, the default


async def test_without_arguments_any_job_of_the_task_counts(runner: TaskRunner) -> None:
    with pytest.raises(AssertionError, match="no job of that task was enqueued at all"):
        await assert_enqueued(runner, send_email)
    await assert_not_enqueued(runner, send_email)
    await send_email.enqueue("a@b.c")
    await assert_enqueued(runner, send_email)
    with pytest.raises(AssertionError, match=r"1 job\(s\) of app.send_email"):
        await assert_not_enqueued(runner, send_email)


async def test_a_job_counts_in_any_status(runner: TaskRunner) -> None:
    job = await send_email.enqueue("a@b.c")
    await runner.cancel(job.id)
    found = await assert_enqueued(runner, send_email, "a@b.c")
    assert found.status is JobStatus.CANCELLED


async def test_the_newest_matching_job_is_returned(runner: TaskRunner) -> None:
    await send_email.enqueue("a@b.c")
    newest = await send_email.enqueue("a@b.c")
    assert (await assert_enqueued(runner, send_email, "a@b.c")).id == newest.id


async def test_a_task_can_be_named_and_an_unknown_name_is_refused(runner: TaskRunner) -> None:
    await send_email.enqueue("a@b.c")
    await assert_enqueued(runner, "app.send_email", "a@b.c")
    with pytest.raises(UnknownTask):
        await assert_enqueued(runner, "app.nothing_like_it")


async def test_an_expected_call_that_does_not_fit_the_signature_is_an_error(
    runner: TaskRunner,
) -> None:
    with pytest.raises(TypeError, match=r"does not fit app\.send_email's signature"):
        await assert_enqueued(runner, send_email, "a@b.c", subject="hi")


async def test_enqueued_jobs_lists_every_page_oldest_first(
    runner: TaskRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(assertions_module, "PAGE", 2)
    jobs = await runner.enqueue_many(send_email, [(f"{i}@b.c",) for i in range(5)])
    await remind.enqueue(datetime(2026, 1, 8, tzinfo=UTC))
    assert [j.id for j in await enqueued_jobs(runner, send_email)] == [j.id for j in jobs]
    assert len(await enqueued_jobs(runner)) == 6
    assert await enqueued_jobs(runner, send_email, status="failed") == []
