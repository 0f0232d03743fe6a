"""Typed results: result() decodes the stored value by the handler's return type, for a
task registered on the runner that asks."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import msgspec

from taskrunner import TaskRunner

Work = Callable[..., Awaitable[None]]
WHEN = datetime(2026, 12, 4, 13, 0, tzinfo=UTC)


class Point(msgspec.Struct):
    x: int
    y: int


@dataclasses.dataclass
class Report:
    id: int
    made_at: datetime
    points: list[Point]


async def test_a_returned_datetime_comes_back_a_datetime(runner: TaskRunner, work: Work):
    @runner.task
    async def stamp() -> datetime:
        return WHEN

    job = await stamp.enqueue()
    await work()

    assert await runner.result(job.id, timeout=5) == WHEN


async def test_a_returned_dataclass_comes_back_as_itself_with_nested_structs(
    runner: TaskRunner, work: Work
):
    report = Report(id=7, made_at=WHEN, points=[Point(1, 2)])

    @runner.task
    def build() -> Report:
        return report

    job = await build.enqueue()
    await work()

    assert await runner.result(job.id, timeout=5) == report


async def test_a_returned_struct_and_uuid_come_back_typed(runner: TaskRunner, work: Work):
    ident = uuid4()

    @runner.task
    async def point() -> Point:
        return Point(3, 4)

    @runner.task
    async def new_id() -> UUID:
        return ident

    jobs = [await point.enqueue(), await new_id.enqueue()]
    await work()

    assert [await runner.result(j.id, timeout=5) for j in jobs] == [Point(3, 4), ident]


async def test_without_a_return_annotation_the_value_comes_back_as_stored(
    runner: TaskRunner, work: Work
):
    @runner.task
    async def untyped():  # type: ignore[no-untyped-def]
        return {"when": WHEN}

    job = await untyped.enqueue()
    await work()

    assert await runner.result(job.id, timeout=5) == {"when": "2026-12-04T13:00:00Z"}


async def test_a_value_that_does_not_fit_its_annotation_comes_back_as_stored(
    runner: TaskRunner, work: Work
):
    @runner.task
    async def liar() -> int:
        value: Any = "not an int"
        return value  # type: ignore[no-any-return]

    job = await liar.enqueue()
    await work()

    assert await runner.result(job.id, timeout=5) == "not an int"


async def test_a_runner_that_does_not_know_the_task_gets_plain_json(
    runner: TaskRunner, pg_dsn: str, work: Work
):
    @runner.task(name="stamp")
    async def stamp() -> datetime:
        return WHEN

    job = await stamp.enqueue()
    await work()

    async with TaskRunner(pg_dsn, schema=runner.schema) as other:
        assert isinstance(await other.result(job.id, timeout=5), str)
