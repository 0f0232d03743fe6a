"""Workflows under concurrent changes: acks, cancels and cancel_workflow that touch
several workflows (or one) at once never deadlock (PostgreSQL would abort one of them
after deadlock_timeout, and the ack writer would have to write the batch again)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from taskrunner import JobStatus, TaskRunner, Workflow, chain, group
from taskrunner.queue import Completion, JobQueue, JobRow

ROUNDS = 25
STEPS_PER_SIDE = 4  # steps of one workflow in a batch before those of the other


def define(runner: TaskRunner) -> Any:
    @runner.task(name="locks.step")
    async def step(x: int = 0) -> int:
        return x

    return step


@pytest.fixture
async def two_connections(runner: TaskRunner, pg_dsn: str) -> AsyncIterator[list[JobQueue]]:
    conns = [await asyncpg.connect(pg_dsn) for _ in range(2)]
    try:
        yield [JobQueue(c, runner.schema) for c in conns]
    finally:
        for c in conns:
            await c.close()


async def interleaved_groups(runner: TaskRunner, step: Any, width: int) -> list[Workflow]:
    """Two groups whose step ids alternate (as concurrent enqueues draw them): the
    first workflow's steps get every other id, the second's the ids between."""
    db = runner.job_queue.db
    seq = f'"{runner.schema}".jobs_id_seq'
    start: int = await db.fetchval(f"SELECT nextval('{seq}')")
    await db.execute(f"ALTER SEQUENCE {seq} INCREMENT BY 2")
    made = []
    for offset in (0, 1):
        await db.execute(f"SELECT setval('{seq}', {start + offset})")
        made.append(await runner.enqueue_workflow(group(*(step.s(i) for i in range(width)))))
    await db.execute(f"ALTER SEQUENCE {seq} INCREMENT BY 1")
    await db.execute(f"SELECT setval('{seq}', {start + 2 * width + 2})")
    ids = sorted(made[0].job_ids + made[1].job_ids)
    assert ids[0::2] == made[0].job_ids
    assert ids[1::2] == made[1].job_ids
    return made


async def claim_all(runner: TaskRunner, n: int) -> dict[int, JobRow]:
    claimed: dict[int, JobRow] = {}
    while len(claimed) < n:
        got = await runner.job_queue.claim(["locks.step"], limit=500, owner="w", lease=300)
        assert got, "nothing left to claim"
        claimed.update((j.id, j) for j in got)
    # Each row written once more, in id order: a scan of the table (any plan of an ack)
    # then meets the steps in id order, as it would rows written by concurrent enqueues.
    async with runner.job_queue.db.acquire() as conn:
        await conn.executemany(
            f'UPDATE "{runner.schema}".jobs SET started_at = started_at WHERE id = $1',
            [(i,) for i in sorted(claimed)],
        )
    return claimed


async def test_acks_of_interleaved_steps_of_two_workflows_never_deadlock(
    runner: TaskRunner, two_connections: list[JobQueue]
) -> None:
    step = define(runner)
    width = ROUNDS * 2 * STEPS_PER_SIDE
    first, second = await interleaved_groups(runner, step, width)
    claimed = await claim_all(runner, 2 * width)
    ids = sorted(claimed)
    errors: list[BaseException] = []
    chunk = 4 * STEPS_PER_SIDE
    for start in range(0, len(ids), chunk):
        low, high = ids[start : start + chunk // 2], ids[start + chunk // 2 : start + chunk]
        # One batch holds the first workflow's lower ids and the second's higher ones,
        # the other the reverse: rows in id order take the workflows in opposite orders.
        batches = [
            [i for i in low if i in first.job_ids] + [i for i in high if i in second.job_ids],
            [i for i in low if i in second.job_ids] + [i for i in high if i in first.job_ids],
        ]
        outcomes = await asyncio.gather(
            *(
                queue.complete_many(  # as the ack writer sends a batch of workflow steps
                    [Completion(lease=claimed[i].lease, result=b"1") for i in batch],
                    workflows=[claimed[i].workflow_id for i in batch],  # type: ignore[misc]
                )
                for queue, batch in zip(two_connections, batches, strict=True)
            ),
            return_exceptions=True,
        )
        errors += [o for o in outcomes if isinstance(o, BaseException)]
    assert errors == []
    for wf in (first, second):
        done = await runner.wait_workflow(wf.id, timeout=5)
        assert done.status == "succeeded"
        assert await runner.workflow_result(wf.id) == [1] * width


async def test_cancelling_a_waiting_step_while_its_parents_ack_releases_it_never_deadlocks(
    runner: TaskRunner, two_connections: list[JobQueue]
) -> None:
    step = define(runner)
    made = [
        await runner.enqueue_workflow(chain(step.s(1), step.s(), step.s())) for _ in range(ROUNDS)
    ]
    claimed = await claim_all(runner, ROUNDS)
    acks, admin = two_connections
    errors: list[BaseException] = []
    for wf in made:
        parent, waiting, _ = wf.job_ids
        outcomes = await asyncio.gather(
            acks.complete_many(
                [Completion(lease=claimed[parent].lease, result=b"1")], workflows=[wf.id]
            ),
            admin.cancel(waiting),
            return_exceptions=True,
        )
        errors += [o for o in outcomes if isinstance(o, BaseException)]
    assert errors == []
    for wf in made:
        done = await runner.wait_workflow(wf.id, timeout=5)
        jobs = [await runner.get_job(i) for i in wf.job_ids]
        assert [j.status for j in jobs if j] == [
            JobStatus.SUCCEEDED,
            JobStatus.CANCELLED,
            JobStatus.CANCELLED,
        ]
        assert done.status == "failed"


async def test_cancel_of_a_step_beside_cancel_workflow_never_deadlocks_and_counts_once(
    runner: TaskRunner, two_connections: list[JobQueue]
) -> None:
    from taskrunner.queue.workflows import WorkflowStore

    step = define(runner)
    made = [
        await runner.enqueue_workflow(group(chain(step.s(1), step.s()), step.s(2), step.s(3)))
        for _ in range(ROUNDS)
    ]
    one, other = two_connections
    store = WorkflowStore(other.db, runner.schema)
    errors: list[BaseException] = []
    for wf in made:
        outcomes = await asyncio.gather(
            one.cancel(wf.job_ids[0]), store.cancel(wf.id), return_exceptions=True
        )
        errors += [o for o in outcomes if isinstance(o, BaseException)]
    assert errors == []
    for wf in made:
        done = await runner.wait_workflow(wf.id, timeout=5)
        assert done.status == "cancelled"
        jobs = [await runner.get_job(i) for i in wf.job_ids]
        assert {j.status for j in jobs if j} == {JobStatus.CANCELLED}
        counts = await runner.job_queue.db.fetchrow(
            f'SELECT unfinished, broken FROM "{runner.schema}".workflows WHERE id = $1', wf.id
        )
        assert (counts["unfinished"], counts["broken"]) == (0, 4)
