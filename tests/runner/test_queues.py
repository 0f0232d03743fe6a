"""The queue-control verbs of TaskRunner: settings checked, stored, read back."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from worker_helpers import run_until_idle

from taskrunner import InvalidArguments, QueueInfo, RateLimit, TaskRunner


async def test_configure_queue_stores_the_limits_queues_reads_back(runner: TaskRunner):
    await runner.configure_queue("reports", concurrency=2)
    await runner.configure_queue("emails", rate_limit=RateLimit(100, per=timedelta(seconds=1)))

    infos = {q.name: q for q in await runner.queues()}

    assert infos["reports"] == QueueInfo(
        name="reports", paused=False, concurrency=2, rate_limit=None, counts={}
    )
    assert infos["emails"].rate_limit == RateLimit(100, per=timedelta(seconds=1))
    assert infos["emails"].concurrency is None


async def test_configure_queue_keeps_the_pause_and_none_lifts_a_limit(runner: TaskRunner):
    await runner.configure_queue("q", concurrency=1)
    await runner.pause_queue("q")
    await runner.configure_queue("q")

    (info,) = await runner.queues()
    assert (info.paused, info.concurrency, info.rate_limit) == (True, None, None)


async def test_queues_lists_queues_that_only_have_jobs_with_their_counts(runner: TaskRunner):
    @runner.task(name="t")
    async def t() -> None: ...

    await t.enqueue(queue="busy")
    await t.enqueue(queue="busy")

    (info,) = await runner.queues()
    assert (info.name, info.paused, info.counts) == ("busy", False, {"queued": 2})


async def test_pause_queue_and_resume_queue_say_whether_they_changed_it(runner: TaskRunner):
    assert await runner.resume_queue("q") is False
    assert await runner.pause_queue("q") is True
    assert await runner.pause_queue("q") is False
    assert await runner.resume_queue("q") is True


async def test_a_worker_leaves_a_paused_queue_queued_and_stops_when_idle(runner: TaskRunner):
    ran: list[str] = []

    @runner.task(name="t")
    async def t(where: str) -> None:
        ran.append(where)

    await runner.pause_queue("held")
    held = await t.enqueue("held", queue="held")
    await t.enqueue("free", queue="free")

    await run_until_idle(runner)

    assert ran == ["free"]
    assert (await runner.get_job(held.id)).status == "queued"  # type: ignore[union-attr]


async def test_a_worker_runs_a_limited_queue_to_the_end(runner: TaskRunner):
    ran: list[int] = []

    @runner.task(name="t")
    async def t(i: int) -> None:
        ran.append(i)

    await runner.configure_queue("serial", concurrency=1)
    await runner.enqueue_many(t, [(i,) for i in range(6)], queue="serial")

    await run_until_idle(runner, concurrency=4)

    assert ran == list(range(6))


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": True}, "concurrency"),
        ({"concurrency": 2**31}, "concurrency"),
        ({"rate_limit": 5}, "rate_limit"),
    ],
)
async def test_bad_limits_are_refused_before_anything_is_written(
    runner: TaskRunner, options: dict[str, object], field: str
):
    with pytest.raises(InvalidArguments) as raised:
        await runner.configure_queue("q", **options)  # type: ignore[arg-type]
    assert raised.value.field == field
    assert await runner.queues() == []


@pytest.mark.parametrize("name", ["", "a\x00b", "x" * 201, 7, "'; DROP TABLE jobs; --"])
async def test_queue_names_are_checked_and_hostile_ones_stay_data(runner: TaskRunner, name: object):
    if name == "'; DROP TABLE jobs; --":
        assert await runner.pause_queue(name) is True  # type: ignore[arg-type]
        assert [q.name for q in await runner.queues()] == [name]
        return
    with pytest.raises(InvalidArguments):
        await runner.pause_queue(name)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "per"), [(0, timedelta(seconds=1)), (3, timedelta(0)), (3, 1.0), (1.5, timedelta(1))]
)
def test_a_rate_limit_needs_a_positive_count_and_period(n: object, per: object):
    with pytest.raises(InvalidArguments):
        RateLimit(n, per=per)  # type: ignore[arg-type]


async def test_a_running_worker_obeys_a_pause_and_a_limit_set_after_it_started(
    runner: TaskRunner,
):
    from worker_helpers import Concurrency, background_worker, eventually

    peak = Concurrency()
    gate = asyncio.Event()

    @runner.task(name="t")
    async def t(i: int) -> None:
        with peak.running(i):
            await asyncio.wait_for(gate.wait(), 10)

    async with background_worker(runner, concurrency=4, poll_interval=0.05):
        await runner.pause_queue("held")
        await runner.configure_queue("serial", concurrency=1)
        held = await t.enqueue(0, queue="held")
        await runner.enqueue_many(t, [(i,) for i in range(1, 4)], queue="serial")
        await eventually(lambda: peak.now == 1, message="the serial queue's first job")
        gate.set()
        await eventually(lambda: len(peak.started) == 3, message="the serial queue drained")
        assert (await runner.get_job(held.id)).status == "queued"  # type: ignore[union-attr]
        await runner.resume_queue("held")
        await runner.wait(held.id, timeout=10)

    assert peak.peak == 1
