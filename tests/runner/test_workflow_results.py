"""workflow_result decodes the last steps' results by their tasks' return types, as
result(job_id) does for one job."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from taskrunner import TaskRunner, chain, chord, group

Work = Callable[..., Awaitable[None]]
WHEN = datetime(2026, 12, 4, 13, 0, tzinfo=UTC)


class Point(msgspec.Struct):
    x: int
    y: int


async def test_a_chain_ending_in_a_typed_step_returns_the_decoded_value(
    runner: TaskRunner, work: Work
) -> None:
    @runner.task(name="typed.seed")
    async def seed() -> int:
        return 3

    @runner.task(name="typed.point")
    async def point(x: int) -> Point:
        return Point(x=x, y=x * 2)

    wf = await runner.enqueue_workflow(chain(seed.s(), point.s()))
    await work()
    assert await runner.workflow_result(wf.id, timeout=10) == Point(x=3, y=6)
    assert await runner.result(wf.job_ids[-1]) == Point(x=3, y=6)


async def test_a_final_group_decodes_each_result_by_its_own_task(
    runner: TaskRunner, work: Work
) -> None:
    @runner.task(name="typed.stamp")
    async def stamp() -> datetime:
        return WHEN

    @runner.task(name="typed.point")
    async def point(x: int) -> Point:
        return Point(x=x, y=0)

    @runner.task(name="typed.plain")
    async def plain() -> Any:
        return {"x": 1, "y": 2}

    wf = await runner.enqueue_workflow(
        group(stamp.si(), group(point.si(1), plain.si()), chord([stamp.si()], point.si(5)))
    )
    await work()
    assert await runner.workflow_result(wf.id, timeout=10) == [
        WHEN,
        [Point(x=1, y=0), {"x": 1, "y": 2}],
        Point(x=5, y=0),
    ]


async def test_the_decoded_result_outlives_the_removal_of_the_steps_rows(
    runner: TaskRunner, work: Work
) -> None:
    @runner.task(name="typed.stamp")
    async def stamp() -> datetime:
        return WHEN

    from taskrunner.queue.cleanup import CleanupStore

    # A keyed workflow outlives its steps: they are pruned, it is kept for its key.
    wf = await runner.enqueue_workflow(chain(stamp.si()), idempotency_key="typed")
    await work()
    await runner.wait_workflow(wf.id, timeout=10)
    store = CleanupStore(runner.job_queue.db, runner.schema)
    await store.set_retention((0.0, 0.0, 0.0))
    await store.prune()
    assert await runner.get_job(wf.job_ids[0]) is None
    assert await runner.workflow_result(wf.id) == WHEN
