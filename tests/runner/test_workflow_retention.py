"""Retention and cleanup of workflows: a finished workflow's rows (workflows,
workflow_steps, workflow_edges) go once its steps' rows are gone and it is past the
retention of its status; never while it runs."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from taskrunner import PermanentFailure, TaskRunner, WorkflowNotFound, chain, chord, group
from taskrunner.queue.cleanup import CleanupStore
from taskrunner.queue.workflows import WorkflowStore

Work = Callable[..., Awaitable[None]]
HOUR = 3600.0


def define(runner: TaskRunner) -> dict[str, Any]:
    @runner.task(name="ret.add")
    async def add(x: int, y: int = 0) -> int:
        return x + y

    @runner.task(name="ret.total")
    async def total(values: list[int]) -> int:
        return sum(values)

    @runner.task(name="ret.boom", max_attempts=1)
    async def boom(value: Any = None) -> None:
        raise PermanentFailure("boom")

    return {"add": add, "total": total, "boom": boom}


async def rows_of(runner: TaskRunner, workflow_id: int) -> tuple[int, int, int]:
    """(workflows, workflow_steps, workflow_edges) rows of the workflow."""
    s = runner.schema
    row = await runner.job_queue.db.fetchrow(
        f'SELECT (SELECT count(*) FROM "{s}".workflows WHERE id = $1),'
        f' (SELECT count(*) FROM "{s}".workflow_steps WHERE workflow_id = $1),'
        f' (SELECT count(*) FROM "{s}".workflow_edges WHERE workflow_id = $1)',
        workflow_id,
    )
    return row[0], row[1], row[2]


async def prune(
    runner: TaskRunner, retention: tuple[float, float, float], batch: int = 1000
) -> None:
    """What a worker's pruning loop does, with this retention stored first."""
    store = CleanupStore(runner.job_queue.db, runner.schema)
    await store.set_retention(retention)
    assert (await store.prune(batch=batch))[1]


async def test_a_finished_workflow_is_pruned_with_its_steps_past_the_retention(
    runner: TaskRunner, work: Work
) -> None:
    t = define(runner)
    wf = await runner.enqueue_workflow(chord([t["add"].s(1), t["add"].s(2)], t["total"].s()))
    await work()
    assert await runner.workflow_result(wf.id, timeout=10) == 3
    assert await rows_of(runner, wf.id) == (1, 3, 3)
    await prune(runner, (0.0, 0.0, 0.0))
    assert await rows_of(runner, wf.id) == (0, 0, 0)
    assert await runner.get_workflow(wf.id) is None
    with pytest.raises(WorkflowNotFound):
        await runner.workflow_result(wf.id, timeout=1)


async def test_a_running_workflow_is_never_pruned_though_its_finished_steps_are(
    runner: TaskRunner, work: Work
) -> None:
    from taskrunner.queue import Completion

    t = define(runner)
    wf = await runner.enqueue_workflow(chain(t["add"].s(1), t["add"].s(10)))
    (first,) = await runner.job_queue.claim(["ret.add"], limit=1, owner="w")
    await runner.job_queue.complete_many([Completion(lease=first.lease, result=b"1")])
    await runner.job_queue.db.execute(
        f"UPDATE \"{runner.schema}\".jobs SET finished_at = now() - interval '1 day' WHERE id = $1",
        first.id,
    )
    await prune(runner, (HOUR, HOUR, HOUR))
    assert await runner.get_job(first.id) is None  # the finished step's row is gone
    assert await rows_of(runner, wf.id) == (1, 2, 2)  # the workflow's are all there
    await work()
    assert await runner.workflow_result(wf.id, timeout=10) == 11


async def test_a_workflow_is_kept_while_one_of_its_steps_rows_is_left(
    runner: TaskRunner, work: Work
) -> None:
    t = define(runner)
    wf = await runner.enqueue_workflow(group(t["add"].s(1), t["boom"].s()))
    await work()
    assert (await runner.wait_workflow(wf.id, timeout=10)).status == "failed"
    await prune(runner, (0.0, HOUR, 0.0))  # the failed step stays an hour
    assert [await runner.get_job(i) is None for i in wf.job_ids] == [True, False]
    assert await rows_of(runner, wf.id) == (1, 2, 2)
    await prune(runner, (0.0, 0.0, 0.0))
    assert await rows_of(runner, wf.id) == (0, 0, 0)


async def test_a_workflow_is_kept_until_it_is_past_the_retention_of_its_status(
    runner: TaskRunner, work: Work
) -> None:
    t = define(runner)
    wf = await runner.enqueue_workflow(chain(t["add"].s(1)))
    await work()
    await runner.wait_workflow(wf.id, timeout=10)
    db, s = runner.job_queue.db, runner.schema
    await db.execute(f'DELETE FROM "{s}".jobs WHERE workflow_id = $1', wf.id)  # steps gone
    await prune(runner, (HOUR, 0.0, 0.0))
    assert await rows_of(runner, wf.id) == (1, 1, 1)
    await db.execute(
        f"UPDATE \"{s}\".workflows SET finished_at = now() - interval '2 hours' WHERE id = $1",
        wf.id,
    )
    await prune(runner, (HOUR, 0.0, 0.0))
    assert await rows_of(runner, wf.id) == (0, 0, 0)


async def test_pruning_goes_in_bounded_batches_until_none_is_due(
    runner: TaskRunner, work: Work
) -> None:
    t = define(runner)
    made = [await runner.enqueue_workflow(chain(t["add"].s(i), t["add"].s())) for i in range(5)]
    await work()
    for wf in made:
        await runner.wait_workflow(wf.id, timeout=10)
    await prune(runner, (0.0, 0.0, 0.0), batch=2)
    left = await runner.job_queue.db.fetchval(f'SELECT count(*) FROM "{runner.schema}".workflows')
    assert left == 0


async def test_pruning_skips_a_workflow_whose_row_is_locked(runner: TaskRunner, work: Work) -> None:
    t = define(runner)
    wf = await runner.enqueue_workflow(chain(t["add"].s(1)))
    await work()
    await runner.wait_workflow(wf.id, timeout=10)
    async with runner.job_queue.db.acquire() as conn, conn.transaction():
        await WorkflowStore(conn, runner.schema).db.execute(
            f'SELECT 1 FROM "{runner.schema}".workflows WHERE id = $1 FOR UPDATE', wf.id
        )
        await prune(runner, (0.0, 0.0, 0.0))  # does not wait for the lock
        assert (await rows_of(runner, wf.id))[0] == 1
    await prune(runner, (0.0, 0.0, 0.0))
    assert await rows_of(runner, wf.id) == (0, 0, 0)


async def test_cleanup_removes_finished_workflows_whose_steps_it_removed(
    runner: TaskRunner, work: Work
) -> None:
    t = define(runner)
    done = await runner.enqueue_workflow(chain(t["add"].s(1), t["add"].s()))
    broken = await runner.enqueue_workflow(chain(t["add"].s(1), t["boom"].s()))
    await work()
    for wf in (done, broken):
        await runner.wait_workflow(wf.id, timeout=10)
    await CleanupStore(runner.job_queue.db, runner.schema).set_retention((0.0, HOUR, 0.0))
    counts = await runner.cleanup(succeeded="remove", cancelled="remove", duty_cycle=1)
    assert counts["succeeded"] == 3
    assert await runner.get_workflow(done.id) is None
    assert await rows_of(runner, done.id) == (0, 0, 0)
    assert await runner.get_workflow(broken.id) is not None  # its failed step is left
    await runner.cleanup(failed="archive", older_than=timedelta(0))
    assert await runner.get_job(broken.job_ids[1]) is not None  # in the archive
    assert await runner.get_workflow(broken.id) is not None  # failed ones stay an hour
    await CleanupStore(runner.job_queue.db, runner.schema).set_retention((0.0, math.inf, 0.0))
    await runner.cleanup(failed="archive")  # inf: until a cleanup acts, as this one does
    assert await runner.get_workflow(broken.id) is None


async def test_cleanup_keeps_a_workflow_for_its_retention_so_its_result_stays_readable(
    runner: TaskRunner, work: Work
) -> None:
    t = define(runner)
    wf = await runner.enqueue_workflow(chain(t["add"].s(1), t["add"].s(2)))
    await work()
    await runner.wait_workflow(wf.id, timeout=10)
    await CleanupStore(runner.job_queue.db, runner.schema).set_retention((HOUR, HOUR, HOUR))
    await runner.cleanup(succeeded="remove")
    assert [await runner.get_job(i) for i in wf.job_ids] == [None, None]
    assert await runner.workflow_result(wf.id) == 3


async def test_a_keyed_workflow_is_kept_until_its_key_expired(
    runner: TaskRunner, work: Work
) -> None:
    t = define(runner)
    wf = await runner.enqueue_workflow(chain(t["add"].s(1)), idempotency_key="kept")
    await work()
    await runner.wait_workflow(wf.id, timeout=10)
    await prune(runner, (0.0, 0.0, 0.0))
    assert await runner.get_job(wf.job_ids[0]) is None  # the step had no key of its own
    assert await rows_of(runner, wf.id) == (1, 1, 1)
    again = await runner.enqueue_workflow(chain(t["add"].s(1)), idempotency_key="kept")
    assert again.id == wf.id
    await runner.job_queue.set_idempotency_ttl(0)
    await prune(runner, (0.0, 0.0, 0.0))
    assert await rows_of(runner, wf.id) == (0, 0, 0)
