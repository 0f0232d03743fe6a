"""The runner's reads and bulk verbs for dashboards: overview(), find_jobs(),
retry_jobs() and cancel_jobs() in bounded batches."""

from __future__ import annotations

from datetime import timedelta

import pytest

from taskrunner import InvalidArguments, JobStatus, PermanentFailure, TaskRunner, chain


async def test_the_overview_counts_live_jobs_per_queue_and_jobs_finished_in_the_window(
    runner: TaskRunner, work
):
    @runner.task(max_attempts=1)
    async def fails() -> None:
        raise PermanentFailure("no")

    @runner.task
    async def fine() -> None: ...

    await fine.enqueue()
    await fails.enqueue()
    await work()
    await fine.enqueue(queue="mail")
    later = await fine.enqueue(queue="mail", delay=3600)
    await runner.pause(later.id)
    await runner.configure_queue("idle", concurrency=1)
    await runner.pause_queue("idle")

    overview = await runner.overview()

    by_name = {q.name: q for q in overview.queues}
    assert set(by_name) == {"default", "mail", "idle"}
    assert by_name["default"].finished == {"succeeded": 1, "failed": 1, "cancelled": 0}
    assert by_name["default"].throughput_per_minute == pytest.approx(2 / 60)
    assert by_name["mail"].live == {"queued": 1, "running": 0, "paused": 1}
    assert by_name["mail"].oldest_queued_age is not None
    assert by_name["idle"].paused is True
    assert overview.finished_totals == {"succeeded": 1, "failed": 1, "cancelled": 0}


async def test_the_overview_counts_finished_jobs_up_to_its_cap(runner: TaskRunner, work):
    @runner.task
    async def fine(n: int) -> None: ...

    await runner.enqueue_many(fine, [(n,) for n in range(5)])
    await work()

    overview = await runner.overview(totals_cap=3, window=timedelta(minutes=5))

    assert overview.finished_totals["succeeded"] == 3
    assert overview.totals_cap == 3
    assert overview.window == 300.0


async def test_find_jobs_finds_by_id_idempotency_key_and_request_id(runner: TaskRunner):
    @runner.task
    async def fine(n: int) -> None: ...

    by_key = await fine.enqueue(1, idempotency_key="k-1")
    by_request = await fine.enqueue(2, request_id="r-1")

    assert [j.id for j in await runner.find_jobs(str(by_request.id))] == [by_request.id]
    assert [j.id for j in await runner.find_jobs("k-1")] == [by_key.id]
    assert [j.id for j in await runner.find_jobs(" r-1 ")] == [by_request.id]
    assert await runner.find_jobs("") == []


async def test_retry_jobs_works_in_batches_until_none_is_left_and_stops_at_its_limit(
    runner: TaskRunner, work
):
    @runner.task(max_attempts=1)
    async def fails(n: int) -> None:
        raise PermanentFailure("no")

    await runner.enqueue_many(fails, [(n,) for n in range(7)])
    await work()

    assert await runner.retry_jobs(task=fails, limit=3, batch=2) == 3
    assert await runner.retry_jobs(status="failed", batch=2) == 4
    assert await runner.retry_jobs(status="failed") == 0
    assert {j.status for j in await runner.list_jobs()} == {JobStatus.QUEUED}


async def test_cancel_jobs_cancels_queued_and_paused_jobs_of_the_filter_only(runner: TaskRunner):
    @runner.task
    async def fine(n: int) -> None: ...

    mail = [await fine.enqueue(n, queue="mail") for n in range(3)]
    await runner.pause(mail[0].id)
    other = await fine.enqueue(9)

    assert await runner.cancel_jobs(queue="mail", batch=1) == 3

    assert {(await runner.get_job(j.id)).status for j in mail} == {JobStatus.CANCELLED}
    assert (await runner.get_job(other.id)).status is JobStatus.QUEUED


async def test_bulk_verbs_refuse_a_bad_filter_before_changing_anything(runner: TaskRunner):
    with pytest.raises(InvalidArguments, match="status"):
        await runner.retry_jobs(status="done")
    with pytest.raises(InvalidArguments, match="batch"):
        await runner.cancel_jobs(queue="x", batch=0)


async def test_retry_jobs_leaves_workflow_steps_to_retry_workflow(runner: TaskRunner, work):
    @runner.task(max_attempts=1)
    async def fails(n: int) -> None:
        raise PermanentFailure("no")

    workflow = await runner.enqueue_workflow(chain(fails.s(1), fails.si(2)))
    alone = await fails.enqueue(3)
    await work()

    assert await runner.retry_jobs(status="failed") == 1

    assert (await runner.get_job(alone.id)).status is JobStatus.QUEUED
    assert (await runner.get_job(workflow.job_ids[0])).status is JobStatus.FAILED


async def test_list_workflows_pages_newest_first(runner: TaskRunner):
    @runner.task
    async def fine(n: int) -> None: ...

    made = [await runner.enqueue_workflow(chain(fine.si(n), fine.si(n))) for n in range(3)]

    first = await runner.list_workflows(limit=2)
    rest = await runner.list_workflows(before_id=first[-1].id, limit=2)

    assert [w.id for w in first + rest] == [w.id for w in reversed(made)]
    assert await runner.list_workflows(status="succeeded") == []
