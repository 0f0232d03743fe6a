"""enqueue_many: one Job per call, in order, all or nothing, in one statement."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from taskrunner import IdempotencyConflict, InvalidArguments, TaskRunner, UnknownTask

Count = Callable[[], Awaitable[int]]


async def test_enqueue_many_returns_one_job_per_call_in_order(runner: TaskRunner):
    @runner.task
    async def send_email(to: str) -> None: ...

    jobs = await runner.enqueue_many(send_email, [("a@b.c",), ("b@c.d",), ("c@d.e",)])

    assert [j.args for j in jobs] == [["a@b.c"], ["b@c.d"], ["c@d.e"]]
    assert len({j.id for j in jobs}) == 3
    assert all(j.task == send_email.name and not j.deduplicated for j in jobs)


async def test_every_job_of_enqueue_many_is_returned_as_stored(runner: TaskRunner):
    @runner.task
    async def send_email(to: str) -> None: ...

    jobs = await runner.enqueue_many(
        send_email,
        [("a@b.c",), {"to": "b@c.d"}, ("c@d.e",)],
        delay=5,
        priority=3,
        queue="mail",
        max_attempts=2,
        request_id="req-1",
    )

    assert [await runner.get_job(j.id) for j in jobs] == jobs


async def test_a_tuple_is_positional_and_a_dict_is_keyword_arguments(runner: TaskRunner):
    @runner.task
    async def send_email(to: str, template: str = "welcome") -> None: ...

    first, second = await runner.enqueue_many(
        send_email, [("a@b.c", "x"), {"to": "b@c.d", "template": "y"}]
    )

    assert (first.args, first.kwargs) == (["a@b.c", "x"], {})
    assert (second.args, second.kwargs) == ([], {"to": "b@c.d", "template": "y"})


async def test_a_bare_value_is_one_positional_argument(runner: TaskRunner):
    @runner.task
    async def build(report_id: int) -> None: ...

    (job,) = await runner.enqueue_many(build, [7])

    assert job.args == [7]


async def test_enqueue_many_by_registered_name(runner: TaskRunner):
    @runner.task(name="reports.build")
    async def build(report_id: int) -> None: ...

    jobs = await runner.enqueue_many("reports.build", [(1,), (2,)])

    assert [(j.task, j.args) for j in jobs] == [("reports.build", [1]), ("reports.build", [2])]


async def test_enqueue_many_of_an_unregistered_name_raises_unknown_task(runner: TaskRunner):
    with pytest.raises(UnknownTask):
        await runner.enqueue_many("reports.missing", [(1,)])


async def test_the_options_apply_to_every_job(runner: TaskRunner):
    @runner.task
    async def build(report_id: int) -> None: ...

    jobs = await runner.enqueue_many(
        build, [(1,), (2,)], queue="reports", priority=7, max_attempts=2, request_id="req-9"
    )

    assert {(j.queue, j.priority, j.max_attempts, j.request_id) for j in jobs} == {
        ("reports", 7, 2, "req-9")
    }


async def test_no_calls_return_no_jobs(runner: TaskRunner, count_jobs: Count):
    @runner.task
    async def build(report_id: int) -> None: ...

    assert await runner.enqueue_many(build, []) == []
    assert await count_jobs() == 0


# ---- all or nothing ------------------------------------------------------------------


async def test_one_invalid_call_raises_invalid_arguments_naming_its_index(
    runner: TaskRunner, count_jobs: Count
):
    @runner.task
    async def build(report_id: int) -> None: ...

    with pytest.raises(InvalidArguments, match="#2") as raised:
        await runner.enqueue_many(build, [(1,), (2,), ("three",), (4,)])

    assert raised.value.index == 2
    assert await count_jobs() == 0


async def test_a_key_taken_with_other_arguments_raises_conflict_and_writes_nothing(
    runner: TaskRunner, count_jobs: Count
):
    @runner.task
    async def build(report_id: int) -> None: ...

    await build.enqueue(1, idempotency_key="taken")

    with pytest.raises(IdempotencyConflict) as raised:
        await runner.enqueue_many(
            build, [(10,), (2,), (11,)], idempotency_keys=["free-1", "taken", "free-2"]
        )

    assert raised.value.index == 1
    assert "#1" in str(raised.value)
    assert await count_jobs() == 1


async def test_one_key_twice_in_a_batch_with_other_arguments_raises_conflict(
    runner: TaskRunner, count_jobs: Count
):
    @runner.task
    async def build(report_id: int) -> None: ...

    with pytest.raises(IdempotencyConflict) as raised:
        await runner.enqueue_many(build, [(1,), (2,)], idempotency_keys=["k", "k"])

    assert raised.value.index == 1
    assert await count_jobs() == 0


async def test_one_key_twice_in_a_batch_with_the_same_arguments_is_one_job(
    runner: TaskRunner, count_jobs: Count
):
    @runner.task
    async def build(report_id: int) -> None: ...

    first, second = await runner.enqueue_many(build, [(1,), (1,)], idempotency_keys=["k", "k"])

    assert first.id == second.id
    assert (first.deduplicated, second.deduplicated) == (False, True)
    assert await count_jobs() == 1


async def test_a_key_held_with_the_same_arguments_returns_the_existing_job_in_the_batch(
    runner: TaskRunner, count_jobs: Count
):
    @runner.task
    async def build(report_id: int) -> None: ...

    existing = await build.enqueue(1, idempotency_key="k1")

    jobs = await runner.enqueue_many(build, [(1,), (2,), (3,)], idempotency_keys=["k1", "k2", None])

    assert jobs[0].id == existing.id
    assert [j.deduplicated for j in jobs] == [True, False, False]
    assert await count_jobs() == 3


async def test_idempotency_keys_of_another_length_raise_value_error(
    runner: TaskRunner, count_jobs: Count
):
    @runner.task
    async def build(report_id: int) -> None: ...

    with pytest.raises(ValueError, match="idempotency_keys"):
        await runner.enqueue_many(build, [(1,), (2,)], idempotency_keys=["only-one"])
    assert await count_jobs() == 0


# ---- one round trip ------------------------------------------------------------------


async def test_enqueue_many_is_one_statement(runner: TaskRunner, pg_dsn: str):
    @runner.task
    async def build(report_id: int) -> None: ...

    conn = await asyncpg.connect(pg_dsn)
    statements: list[str] = []

    def log(record: Any) -> None:
        statements.append(record.query)

    try:
        await runner.enqueue_many(build, [(0,)], connection=conn)  # asyncpg's type lookups
        conn.add_query_logger(log)
        jobs = await runner.enqueue_many(build, [(n,) for n in range(50)], connection=conn)
    finally:
        await conn.close()

    assert len(jobs) == 50
    assert len(statements) == 1


# ---- how a call of a batch is read --------------------------------------------------


async def test_a_list_is_the_one_argument_of_a_task_with_one_positional_parameter(
    runner: TaskRunner,
):
    @runner.task
    async def total(values: list[int]) -> int:
        return sum(values)

    jobs = await runner.enqueue_many(total, [[1, 2], [3], ([4, 5],)])

    assert [j.args for j in jobs] == [[[1, 2]], [[3]], [[4, 5]]]


async def test_a_list_for_a_task_of_several_parameters_is_refused_as_ambiguous(
    runner: TaskRunner, count_jobs
):
    @runner.task
    async def add(a: int, b: int = 0) -> int:
        return a + b

    with pytest.raises(InvalidArguments, match="write a tuple") as caught:
        await runner.enqueue_many(add, [(1, 2), [3, 4]])

    assert caught.value.index == 1
    assert await count_jobs() == 0
