"""Workflows: chain, group and chord as steps that the database releases itself."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from worker_helpers import eventually

from taskrunner import (
    IdempotencyConflict,
    InvalidArguments,
    JobCancelled,
    JobFailed,
    JobStatus,
    PermanentFailure,
    TaskRunner,
    UnknownTask,
    chain,
    chord,
    group,
    request_context,
)


def define(runner: TaskRunner) -> dict[str, Any]:
    calls: list[tuple[str, Any]] = []

    @runner.task(name="wf.add")
    async def add(x: int, y: int = 0) -> int:
        calls.append(("add", (x, y)))
        return x + y

    @runner.task(name="wf.total")
    async def total(values: list[int]) -> int:
        calls.append(("total", values))
        return sum(values)

    @runner.task(name="wf.echo")
    async def echo(value: Any) -> Any:
        calls.append(("echo", value))
        return value

    @runner.task(name="wf.fresh")
    async def fresh() -> str:
        calls.append(("fresh", None))
        return "fresh"

    @runner.task(name="wf.boom", max_attempts=1)
    async def boom(value: Any = None) -> None:
        raise PermanentFailure("boom")

    return {"add": add, "total": total, "echo": echo, "fresh": fresh, "boom": boom, "calls": calls}


async def statuses(runner: TaskRunner, ids: list[int]) -> list[str]:
    jobs = [await runner.get_job(i) for i in ids]
    return [str(j.status) if j else "gone" for j in jobs]


async def test_a_chain_passes_each_result_to_the_next_step(runner: TaskRunner, work: Any):
    t = define(runner)
    wf = await runner.enqueue_workflow(chain(t["add"].s(1, 2), t["add"].s(10), t["echo"].s()))
    await work()
    done = await runner.wait_workflow(wf.id, timeout=10)
    assert done.status == "succeeded"
    assert done.finished_at is not None
    assert await runner.workflow_result(wf.id) == 13
    assert [c for c in t["calls"] if c[0] == "add"] == [("add", (1, 2)), ("add", (3, 10))]


async def test_a_chord_body_receives_the_header_results_in_order(runner: TaskRunner, work: Any):
    t = define(runner)
    wf = await runner.enqueue_workflow(chord([t["add"].s(i) for i in range(5)], t["total"].s()))
    await work()
    assert await runner.workflow_result(wf.id, timeout=10) == 10
    assert ("total", [0, 1, 2, 3, 4]) in t["calls"]


async def test_a_workflow_ending_in_a_group_returns_the_list(runner: TaskRunner, work: Any):
    t = define(runner)
    wf = await runner.enqueue_workflow(
        chain(t["add"].s(1), group(t["add"].s(1), t["add"].s(2), group(t["echo"].s())))
    )
    await work()
    assert await runner.workflow_result(wf.id, timeout=10) == [2, 3, [1]]


async def test_nested_groups_give_nested_lists_to_the_next_step(runner: TaskRunner, work: Any):
    t = define(runner)
    wf = await runner.enqueue_workflow(
        chain(
            group(t["add"].s(1), chain(t["add"].s(2), group(t["add"].s(), t["add"].s(5)))),
            t["echo"].s(),
        )
    )
    await work()
    assert await runner.workflow_result(wf.id, timeout=10) == [1, [2, 7]]


async def test_si_steps_receive_nothing_but_still_wait(runner: TaskRunner, work: Any):
    t = define(runner)
    wf = await runner.enqueue_workflow(chain(t["add"].s(1), t["fresh"].si()))
    first, second = wf.job_ids
    assert await statuses(runner, wf.job_ids) == ["queued", "waiting"]
    await work()
    assert await runner.workflow_result(wf.id, timeout=10) == "fresh"
    one = await runner.get_job(first)
    two = await runner.get_job(second)
    assert one is not None
    assert two is not None
    assert one.finished_at is not None
    assert two.started_at is not None
    assert two.started_at >= one.finished_at


async def test_steps_carry_the_workflow_id_and_one_request_id(runner: TaskRunner):
    t = define(runner)
    with request_context("req-wf"):
        wf = await runner.enqueue_workflow(chain(t["add"].s(1), t["add"].s()))
    jobs = [await runner.get_job(i) for i in wf.job_ids]
    assert wf.request_id == "req-wf"
    assert {j.workflow_id for j in jobs if j} == {wf.id}
    assert {j.request_id for j in jobs if j} == {"req-wf"}
    plain = await t["add"].enqueue(1)
    assert plain.workflow_id is None


async def test_a_waiting_step_is_never_claimed(runner: TaskRunner):
    t = define(runner)
    wf = await runner.enqueue_workflow(chain(t["add"].s(1), t["add"].s()))
    claimed = await runner.job_queue.claim(["wf.add"], limit=10, owner="w")
    assert [j.id for j in claimed] == [wf.job_ids[0]]
    assert claimed[0].workflow_id == wf.id


async def test_the_last_parents_ack_queues_the_waiting_step(runner: TaskRunner):
    from taskrunner.queue import Completion

    t = define(runner)
    wf = await runner.enqueue_workflow(chord([t["add"].s(1), t["add"].s(2)], t["total"].s()))
    claimed = await runner.job_queue.claim(["wf.add"], limit=10, owner="w")
    await runner.job_queue.complete_many([Completion(lease=claimed[0].lease, result=b"1")])
    assert await statuses(runner, wf.job_ids) == ["succeeded", "running", "waiting"]
    await runner.job_queue.complete_many([Completion(lease=claimed[1].lease, result=b"2")])
    body = await runner.get_job(wf.job_ids[2])
    assert body is not None
    assert body.status is JobStatus.QUEUED
    assert body.args == [[1, 2]]


async def test_arguments_of_every_step_are_checked_and_nothing_is_written(
    runner: TaskRunner, count_jobs: Any
):
    t = define(runner)
    with pytest.raises(InvalidArguments, match="step #1"):
        await runner.enqueue_workflow(chain(t["add"].s(1), t["add"].s("x")))
    with pytest.raises(InvalidArguments, match="y"):
        await runner.enqueue_workflow(chain(t["add"].s(1), t["add"].s(1, 2)))
    with pytest.raises(InvalidArguments, match="si"):
        await runner.enqueue_workflow(chain(t["add"].s(1), t["fresh"].s()))
    assert await count_jobs() == 0


async def test_a_step_of_an_unregistered_task_is_refused(
    runner: TaskRunner, count_jobs: Any, pg_dsn: str, second_schema: str
):
    t = define(runner)
    other = TaskRunner(pg_dsn, schema=second_schema)

    @other.task(name="elsewhere")
    async def elsewhere(x: int) -> int:
        return x

    with pytest.raises(UnknownTask):
        await runner.enqueue_workflow(chain(t["add"].s(1), elsewhere.s()))
    assert await count_jobs() == 0


async def test_same_key_same_definition_returns_the_existing_workflow(
    runner: TaskRunner, count_jobs: Any
):
    t = define(runner)
    first = await runner.enqueue_workflow(chain(t["add"].s(1), t["add"].s()), idempotency_key="k")
    again = await runner.enqueue_workflow(chain(t["add"].s(1), t["add"].s()), idempotency_key="k")
    assert again.id == first.id
    assert again.deduplicated
    assert again.job_ids == first.job_ids
    with pytest.raises(IdempotencyConflict):
        await runner.enqueue_workflow(chain(t["add"].s(2), t["add"].s()), idempotency_key="k")
    assert await count_jobs() == 2


async def test_a_workflow_in_the_callers_transaction_exists_only_if_it_commits(
    runner: TaskRunner, pg_dsn: str, count_jobs: Any
):
    t = define(runner)
    conn = await asyncpg.connect(pg_dsn)
    try:
        async with conn.transaction():
            wf = await runner.enqueue_workflow(chain(t["add"].s(1), t["add"].s()), connection=conn)
            assert await runner.get_workflow(wf.id) is None  # not committed yet
        assert await runner.get_workflow(wf.id) is not None
        tx = conn.transaction()
        await tx.start()
        gone = await runner.enqueue_workflow(chain(t["add"].s(3)), connection=conn)
        await tx.rollback()
        assert await runner.get_workflow(gone.id) is None
    finally:
        await conn.close()
    assert await count_jobs() == 2


async def test_a_failed_step_cancels_exactly_its_dependants(runner: TaskRunner, work: Any):
    t = define(runner)
    wf = await runner.enqueue_workflow(
        group(
            chain(t["add"].s(1), t["boom"].s(), t["add"].s(), t["add"].s()),
            chain(t["add"].s(2), t["add"].s(3)),
        )
    )
    await work()
    done = await runner.wait_workflow(wf.id, timeout=10)
    assert done.status == "failed"
    assert done.finished_at is not None
    assert await statuses(runner, wf.job_ids) == [
        "succeeded",
        "failed",
        "cancelled",
        "cancelled",
        "succeeded",
        "succeeded",
    ]
    dependant = await runner.get_job(wf.job_ids[3])
    assert dependant is not None
    assert str(wf.job_ids[1]) in (dependant.last_error or "")
    with pytest.raises(JobFailed):
        await runner.workflow_result(wf.id)


async def test_one_batched_ack_of_every_parent_releases_the_step_once(runner: TaskRunner):
    from taskrunner.queue import Completion

    t = define(runner)
    wf = await runner.enqueue_workflow(chord([t["add"].s(i) for i in range(3)], t["total"].s()))
    claimed = await runner.job_queue.claim(["wf.add"], limit=10, owner="w")
    await runner.job_queue.complete_many(
        [Completion(lease=j.lease, result=str(j.id).encode()) for j in reversed(claimed)]
    )
    body = await runner.get_job(wf.job_ids[3])
    assert body is not None
    assert body.status is JobStatus.QUEUED
    assert body.args == [wf.job_ids[:3]]


async def test_cancel_workflow_cancels_every_step_not_started(runner: TaskRunner):
    t = define(runner)
    wf = await runner.enqueue_workflow(chain(t["add"].s(1), t["add"].s(), t["add"].s()))
    assert await runner.cancel_workflow(wf.id) == 3
    done = await runner.wait_workflow(wf.id, timeout=5)
    assert done.status == "cancelled"
    assert await statuses(runner, wf.job_ids) == ["cancelled"] * 3
    assert await runner.cancel_workflow(wf.id) == 0
    with pytest.raises(JobCancelled):
        await runner.workflow_result(wf.id)


async def test_retry_workflow_requeues_failed_and_cancelled_steps_and_can_succeed(
    runner: TaskRunner, work: Any
):
    t = define(runner)
    flaky = {"fail": True}

    @runner.task(name="wf.flaky", max_attempts=1)
    async def flaky_step(value: int) -> int:
        if flaky["fail"]:
            raise PermanentFailure("not yet")
        return value * 10

    wf = await runner.enqueue_workflow(
        chain(t["add"].s(1), flaky_step.s(), t["add"].s(1), chord([t["add"].s()], t["total"].s()))
    )
    await work()
    assert (await runner.wait_workflow(wf.id, timeout=10)).status == "failed"
    assert await statuses(runner, wf.job_ids) == [
        "succeeded",
        "failed",
        "cancelled",
        "cancelled",
        "cancelled",
    ]
    flaky["fail"] = False
    assert await runner.retry_workflow(wf.id) == 4
    assert await statuses(runner, wf.job_ids) == [
        "succeeded",
        "queued",
        "waiting",
        "waiting",
        "waiting",
    ]
    assert (await runner.get_workflow(wf.id)).status == "running"  # type: ignore[union-attr]
    await work()
    done = await runner.wait_workflow(wf.id, timeout=10)
    assert done.status == "succeeded"
    assert await runner.workflow_result(wf.id) == 11


async def test_retry_of_one_failed_step_puts_its_cancelled_dependants_back(
    runner: TaskRunner, work: Any
):
    t = define(runner)
    flaky = {"fail": True}

    @runner.task(name="wf.flaky", max_attempts=1)
    async def flaky_step(value: int) -> int:
        if flaky["fail"]:
            raise PermanentFailure("not yet")
        return value

    wf = await runner.enqueue_workflow(chain(t["add"].s(1), flaky_step.s(), t["add"].s(5)))
    await work()
    flaky["fail"] = False
    assert await runner.retry(wf.job_ids[1]) is True
    assert await statuses(runner, wf.job_ids) == ["succeeded", "queued", "waiting"]
    await work()
    assert await runner.workflow_result(wf.id, timeout=10) == 6
    assert await runner.retry(wf.job_ids[1]) is False


async def test_cancel_of_a_waiting_step_cancels_it_and_its_dependants(
    runner: TaskRunner, work: Any
):
    t = define(runner)
    wf = await runner.enqueue_workflow(
        group(chain(t["add"].s(1), t["add"].s(), t["add"].s()), t["add"].s(7))
    )
    assert await runner.pause(wf.job_ids[1]) is False  # only queued jobs pause
    assert await runner.cancel(wf.job_ids[1]) is True
    assert await statuses(runner, wf.job_ids) == ["queued", "cancelled", "cancelled", "queued"]
    await work()
    done = await runner.wait_workflow(wf.id, timeout=10)
    assert done.status == "failed"
    assert await statuses(runner, wf.job_ids) == [
        "succeeded",
        "cancelled",
        "cancelled",
        "succeeded",
    ]


async def test_stats_and_list_jobs_count_waiting_steps(runner: TaskRunner):
    t = define(runner)
    await runner.enqueue_workflow(chain(t["add"].s(1), t["add"].s(), t["add"].s()))
    stats = await runner.stats()
    assert stats["default"]["waiting"] == 2
    assert stats["default"]["queued"] == 1
    assert len(await runner.list_jobs(status="waiting")) == 2


async def test_inputs_and_the_result_outlive_the_pruning_of_finished_steps(
    runner: TaskRunner, work: Any
):
    from taskrunner.queue import Completion

    t = define(runner)
    wf = await runner.enqueue_workflow(
        chain(chord([t["add"].s(1), t["add"].s(2)], t["total"].s()), group(t["echo"].s()))
    )
    claimed = await runner.job_queue.claim(["wf.add"], limit=1, owner="w")
    await runner.job_queue.complete_many([Completion(lease=claimed[0].lease, result=b"1")])
    await runner.cleanup(succeeded="remove")  # the first parent's row is gone
    await work()
    assert await runner.workflow_result(wf.id, timeout=10) == [3]
    await runner.cleanup(succeeded="remove")  # every step's row is gone
    assert await runner.workflow_result(wf.id, timeout=10) == [3]


async def test_a_step_completed_through_the_sql_interface_releases_its_dependants(
    runner: TaskRunner,
):
    t = define(runner)
    wf = await runner.enqueue_workflow(chain(t["add"].s(1), t["add"].s(2)))
    db = runner.job_queue.db
    s = runner.schema
    (claimed,) = await db.fetch(f"SELECT * FROM \"{s}\".claim('sql', ARRAY['wf.add'])")
    assert await db.fetchval(
        f"SELECT \"{s}\".complete($1, $2, '41')", claimed["id"], claimed["lease_id"]
    )
    step = await runner.get_job(wf.job_ids[1])
    assert step is not None
    assert step.status is JobStatus.QUEUED
    assert step.args == [41, 2]


async def test_a_step_whose_worker_died_on_its_last_attempt_cancels_its_dependants(
    runner: TaskRunner,
):
    t = define(runner)

    @runner.task(name="wf.once", max_attempts=1)
    async def once() -> int:
        return 1

    wf = await runner.enqueue_workflow(chain(once.s(), t["add"].s()))
    await runner.job_queue.claim(["wf.once"], limit=1, owner="dead", lease=0.01)

    async def rescued() -> bool:  # once the lease has run out
        return bool(await runner.job_queue.rescue_expired())

    await eventually(rescued, timeout=5, message="rescue of the expired lease")
    assert await statuses(runner, wf.job_ids) == ["failed", "cancelled"]
    assert (await runner.wait_workflow(wf.id, timeout=5)).status == "failed"
