"""Schedules against real PostgreSQL: writing, replacing, pausing, removing, running now,
what is refused, and a worker ticking them (one process; several are in
tests/acceptance/test_schedule_processes.py)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from worker_helpers import background_worker, eventually

from taskrunner import (
    InvalidArguments,
    InvalidSchedule,
    Schedule,
    ScheduleNotFound,
    TaskRunner,
)


def register(runner: TaskRunner):
    @runner.task(name="reports.nightly", queue="reports", priority=3, max_attempts=2)
    async def nightly(region: str, full: bool = False) -> None:
        return None

    return nightly


async def schedule_rows(runner: TaskRunner) -> int:
    count: int = await runner.job_queue.db.fetchval(
        f'SELECT count(*) FROM "{runner.schema}".schedules'
    )
    return count


async def jobs_of(runner: TaskRunner) -> list[datetime]:
    rows = await runner.job_queue.db.fetch(
        f'SELECT run_at FROM "{runner.schema}".jobs ORDER BY run_at'
    )
    return [r["run_at"] for r in rows]


async def test_add_schedule_stores_the_definition_with_the_tasks_options(runner: TaskRunner):
    nightly = register(runner)
    made = await runner.add_schedule(
        "eu-nightly", nightly, cron="0 3 * * *", timezone="Europe/Berlin", args=["eu"]
    )
    assert isinstance(made, Schedule)
    assert (made.name, made.task, made.cron, made.every, made.timezone) == (
        "eu-nightly",
        "reports.nightly",
        "0 3 * * *",
        None,
        "Europe/Berlin",
    )
    assert (made.args, made.kwargs, made.queue, made.priority, made.missed) == (
        ["eu"],
        {},
        "reports",
        3,
        "latest",
    )
    assert made.paused is False
    assert made.last_run_at is None
    assert made.next_run_at is not None
    assert made.next_run_at > datetime.now(UTC)
    assert await runner.list_schedules() == [made]


async def test_an_interval_schedule_next_tick_is_a_multiple_of_every_since_the_epoch(
    runner: TaskRunner,
):
    nightly = register(runner)
    made = await runner.add_schedule("feeds", nightly, every=timedelta(minutes=5), args=["x"])
    assert made.every == timedelta(minutes=5)
    assert made.next_run_at is not None
    assert made.next_run_at.timestamp() % 300 == 0


@pytest.mark.parametrize(
    "definition",
    [
        {"cron": "0 25 * * *"},
        {"cron": "0 3 * *"},
        {"cron": "0 3 * * *", "timezone": "Europe/Atlantis"},
        {"cron": "0 3 * * *", "every": timedelta(hours=1)},
        {},
        {"every": timedelta(seconds=0.2)},
        {"every": timedelta(hours=1), "missed": "sometimes"},
    ],
)
async def test_a_bad_schedule_raises_invalid_schedule_and_writes_nothing(
    runner: TaskRunner, definition
):
    nightly = register(runner)
    with pytest.raises(InvalidSchedule):
        await runner.add_schedule("bad", nightly, args=["eu"], **definition)
    assert await schedule_rows(runner) == 0


async def test_a_schedule_whose_arguments_do_not_fit_writes_nothing(runner: TaskRunner):
    nightly = register(runner)
    with pytest.raises(InvalidArguments):
        await runner.add_schedule("bad", nightly, cron="0 3 * * *", kwargs={"region": 7})
    assert await schedule_rows(runner) == 0


def test_periodic_checks_its_definition_when_it_is_declared(runner: TaskRunner):
    with pytest.raises(InvalidSchedule):

        @runner.periodic(cron="0 3 * * *", timezone="Nowhere/Special")
        @runner.task
        async def nightly() -> None: ...

    assert runner.declared_schedules == {}


async def test_the_same_name_again_replaces_the_schedule_and_keeps_it_paused(
    runner: TaskRunner,
):
    nightly = register(runner)
    await runner.add_schedule("nightly", nightly, cron="0 3 * * *", args=["eu"])
    assert await runner.pause_schedule("nightly") is True
    replaced = await runner.add_schedule("nightly", nightly, cron="0 4 * * *", args=["us"])
    assert (replaced.cron, replaced.args, replaced.paused) == ("0 4 * * *", ["us"], True)
    assert len(await runner.list_schedules()) == 1


async def test_a_replaced_schedule_keeps_its_next_tick_unless_its_ticks_changed(
    runner: TaskRunner,
):
    nightly = register(runner)
    first = await runner.add_schedule("nightly", nightly, cron="0 3 * * *", args=["eu"])
    await runner.job_queue.db.execute(  # as if its next tick had passed while no worker ran
        f"UPDATE \"{runner.schema}\".schedules SET next_run_at = next_run_at - interval '2 days'"
    )
    same_ticks = await runner.add_schedule("nightly", nightly, cron="0 3 * * *", args=["us"])
    assert first.next_run_at is not None
    assert same_ticks.next_run_at == first.next_run_at - timedelta(days=2)
    new_ticks = await runner.add_schedule("nightly", nightly, cron="0 4 * * *", args=["us"])
    assert new_ticks.next_run_at is not None
    assert new_ticks.next_run_at > datetime.now(UTC)
    assert new_ticks.next_run_at.hour == 4


async def test_pause_resume_and_remove_say_whether_they_changed_anything(runner: TaskRunner):
    nightly = register(runner)
    await runner.add_schedule("nightly", nightly, cron="0 3 * * *", args=["eu"])
    assert await runner.resume_schedule("nightly") is False
    assert await runner.pause_schedule("nightly") is True
    assert await runner.pause_schedule("nightly") is False
    assert await runner.resume_schedule("nightly") is True
    assert await runner.remove_schedule("nightly") is True
    assert await runner.remove_schedule("nightly") is False
    assert await runner.pause_schedule("nightly") is False
    assert await runner.list_schedules() == []


async def test_run_schedule_now_enqueues_one_job_of_the_schedule_outside_its_ticks(
    runner: TaskRunner,
):
    nightly = register(runner)
    made = await runner.add_schedule(
        "nightly", nightly, cron="0 3 * * *", args=["eu"], kwargs={"full": True}, priority=7
    )
    job = await runner.run_schedule_now("nightly")
    assert (job.task, job.args, job.kwargs, job.queue, job.priority, job.max_attempts) == (
        "reports.nightly",
        ["eu"],
        {"full": True},
        "reports",
        7,
        2,
    )
    assert job.run_at <= datetime.now(UTC)
    (after,) = await runner.list_schedules()
    assert (after.next_run_at, after.last_run_at) == (made.next_run_at, None)


async def test_run_schedule_now_of_an_unknown_name_raises_schedule_not_found(
    runner: TaskRunner,
):
    with pytest.raises(ScheduleNotFound):
        await runner.run_schedule_now("nobody")


async def test_a_worker_writes_its_declared_schedules_and_enqueues_each_tick_at_its_time(
    runner: TaskRunner,
):
    @runner.periodic(every=timedelta(seconds=1), kwargs={"source": "all"}, priority=5)
    @runner.task(name="feeds.poll")
    async def poll(source: str) -> None:
        return None

    async with background_worker(runner):
        await eventually(lambda: _has_jobs(runner, 3), timeout=10, message="three ticks")
    (schedule,) = await runner.list_schedules()
    assert (schedule.name, schedule.kwargs, schedule.priority) == (
        "feeds.poll",
        {"source": "all"},
        5,
    )
    rows = await runner.job_queue.db.fetch(
        f'SELECT run_at, created_at FROM "{runner.schema}".jobs ORDER BY run_at'
    )
    for row in rows:
        assert row["run_at"].microsecond == 0  # the tick itself
        assert row["created_at"] - row["run_at"] < timedelta(seconds=1.5)
    assert schedule.last_run_at == rows[-1]["run_at"]


async def test_a_paused_schedule_enqueues_nothing_and_resumes_from_the_next_tick(
    runner: TaskRunner,
):
    nightly = register(runner)
    await runner.add_schedule("fast", nightly, every=timedelta(seconds=1), args=["eu"])
    await runner.pause_schedule("fast")
    async with background_worker(runner):
        paused_at = datetime.now(UTC)
        await eventually(lambda: datetime.now(UTC) > paused_at + timedelta(seconds=2.2))
        assert await jobs_of(runner) == []
        await runner.resume_schedule("fast")
        await eventually(lambda: _has_jobs(runner, 1), timeout=5, message="a tick")
    assert min(await jobs_of(runner)) > paused_at + timedelta(seconds=2)


async def test_a_database_error_in_the_tick_loop_is_logged_and_the_loop_goes_on(
    runner: TaskRunner, caplog: pytest.LogCaptureFixture
):
    nightly = register(runner)
    await runner.add_schedule("fast", nightly, every=timedelta(seconds=1), args=["eu"])
    db = runner.job_queue.db
    async with background_worker(runner):
        await eventually(lambda: _has_jobs(runner, 1), timeout=5, message="a first tick")
        with caplog.at_level(logging.WARNING, logger="taskrunner"):
            await db.execute(f'ALTER TABLE "{runner.schema}".schedules RENAME TO gone')
            await eventually(
                lambda: any("schedules: database" in r.message for r in caplog.records),
                timeout=5,
                message="a logged database error",
            )
            await db.execute(f'ALTER TABLE "{runner.schema}".gone RENAME TO schedules')
            before = len(await jobs_of(runner))
            await eventually(lambda: _has_jobs(runner, before + 1), timeout=10, message="a tick")


async def _has_jobs(runner: TaskRunner, count: int) -> bool:
    return len(await jobs_of(runner)) >= count
