"""A schedule's enqueue options and arguments are checked as an enqueue checks them, by
`add_schedule` and by `@runner.periodic` alike: a bad one raises InvalidArguments naming
the field and nothing is written, so every tick's job can be written. The schedule's own
name and interval are refused as InvalidSchedule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from taskrunner import InvalidArguments, InvalidSchedule, TaskRunner


def register(runner: TaskRunner):
    @runner.task(name="reports.nightly", queue="reports", priority=3, max_attempts=2)
    async def nightly(region: str = "eu") -> None:
        return None

    return nightly


async def schedule_rows(runner: TaskRunner) -> int:
    count: int = await runner.job_queue.db.fetchval(
        f'SELECT count(*) FROM "{runner.schema}".schedules'
    )
    return count


BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"queue": ""}, "queue"),
    ({"queue": 5}, "queue"),
    ({"queue": "a\x00b"}, "queue"),
    ({"queue": "\ud800"}, "queue"),
    ({"queue": "q" * 201}, "queue"),
    ({"priority": 1.5}, "priority"),
    ({"priority": "1"}, "priority"),
    ({"priority": True}, "priority"),
    ({"priority": 2**31}, "priority"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"max_attempts": "3"}, "max_attempts"),
    ({"max_attempts": 2**31}, "max_attempts"),
    ({"args": "eu"}, "args"),
    ({"args": 5}, "args"),
    ({"kwargs": "region"}, "kwargs"),
    ({"kwargs": [("region", "eu")]}, "kwargs"),
]
BAD_ARGUMENTS: list[dict[str, Any]] = [
    {"args": [float("nan")]},
    {"kwargs": {"region": "a\x00b"}},
    {"args": ["eu", "too many"]},
]


@pytest.mark.parametrize(("options", "field"), BAD_OPTIONS)
async def test_add_schedule_refuses_a_bad_option_naming_the_field_and_writes_nothing(
    runner: TaskRunner, options: dict[str, Any], field: str
):
    nightly = register(runner)
    with pytest.raises(InvalidArguments) as refused:
        await runner.add_schedule("nightly", nightly, cron="0 3 * * *", **options)
    assert refused.value.field == field
    assert field in str(refused.value)
    assert await schedule_rows(runner) == 0


@pytest.mark.parametrize(("options", "field"), BAD_OPTIONS)
def test_periodic_refuses_a_bad_option_naming_the_field_and_declares_nothing(
    runner: TaskRunner, options: dict[str, Any], field: str
):
    with pytest.raises(InvalidArguments) as refused:

        @runner.periodic(every=60, **options)
        @runner.task
        async def nightly(region: str = "eu") -> None: ...

    assert refused.value.field == field
    assert runner.declared_schedules == {}


@pytest.mark.parametrize("arguments", BAD_ARGUMENTS)
async def test_add_schedule_refuses_arguments_an_enqueue_would_refuse(
    runner: TaskRunner, arguments: dict[str, Any]
):
    nightly = register(runner)
    with pytest.raises(InvalidArguments):
        await nightly.enqueue(*arguments.get("args", ()), **arguments.get("kwargs", {}))
    with pytest.raises(InvalidArguments):
        await runner.add_schedule("nightly", nightly, every=60, **arguments)
    assert await schedule_rows(runner) == 0


@pytest.mark.parametrize(
    "definition",
    [
        {"name": "a\x00b"},
        {"name": "n" * 201},
        {"name": "\udc00"},
        {"every": float("nan")},
        {"every": float("inf")},
        {"every": 1e300},
        {"every": -1},
        {"every": timedelta(days=999_999_999)},
    ],
)
async def test_a_schedule_name_or_interval_that_cannot_be_stored_is_an_invalid_schedule(
    runner: TaskRunner, definition: dict[str, Any]
):
    nightly = register(runner)
    spec: dict[str, Any] = {"name": "nightly", "every": 60, **definition}
    with pytest.raises(InvalidSchedule):
        await runner.add_schedule(spec.pop("name"), nightly, **spec)
    assert await schedule_rows(runner) == 0


async def test_options_given_to_a_schedule_are_stored_and_given_to_its_jobs(runner: TaskRunner):
    nightly = register(runner)
    made = await runner.add_schedule(
        "nightly", nightly, every=60, queue="urgent", priority=-5, max_attempts=9
    )
    assert (made.queue, made.priority, made.max_attempts) == ("urgent", -5, 9)
    job = await runner.run_schedule_now("nightly")
    assert (job.queue, job.priority, job.max_attempts) == ("urgent", -5, 9)
