"""list_jobs filters and pages; stats() of a fresh schema; JobNotFound is public."""

from __future__ import annotations

import pytest

import taskrunner
from taskrunner import JobNotFound, TaskRunner, TaskRunnerError, request_context


async def test_stats_of_a_fresh_schema_has_the_default_queue_with_zeros(runner: TaskRunner):
    stats = await runner.stats()

    assert stats["default"]["queued"] == 0
    assert set(stats.queues) == {"default"}
    assert stats["never-used"]["failed"] == 0
    assert stats.totals["queued"] == 0


def test_job_not_found_is_exported_and_a_taskrunner_error():
    assert "JobNotFound" in taskrunner.__all__
    assert issubclass(JobNotFound, TaskRunnerError)
    assert issubclass(JobNotFound, LookupError)


async def test_waiting_for_a_job_that_does_not_exist_raises_job_not_found(runner: TaskRunner):
    with pytest.raises(JobNotFound) as caught:
        await runner.result(424242, timeout=5)
    assert caught.value.job_id == 424242


async def test_list_jobs_filters_by_task_and_by_request_id(runner: TaskRunner):
    @runner.task
    async def a(n: int) -> None: ...

    @runner.task
    async def b(n: int) -> None: ...

    first = await a.enqueue(1)
    with request_context("req-7"):
        second = await a.enqueue(2)
        third = await b.enqueue(3)

    assert [j.id for j in await runner.list_jobs(task=a)] == [second.id, first.id]
    assert [j.id for j in await runner.list_jobs(task=b.name)] == [third.id]
    assert [j.id for j in await runner.list_jobs(request_id="req-7")] == [third.id, second.id]
    assert [j.id for j in await runner.list_jobs(task=a, request_id="req-7")] == [second.id]


async def test_list_jobs_pages_with_before_id(runner: TaskRunner):
    @runner.task
    async def a(n: int) -> None: ...

    ids = [(await a.enqueue(n)).id for n in range(5)]

    pages: list[list[int]] = []
    before = None
    while True:
        page = await runner.list_jobs(limit=2, before_id=before)
        if not page:
            break
        pages.append([j.id for j in page])
        before = page[-1].id

    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
