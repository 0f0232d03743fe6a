"""Arguments JSON or PostgreSQL cannot carry are refused at enqueue, naming the argument,
and nothing is written."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from taskrunner import InvalidArguments, JobStatus, TaskRunner
from taskrunner.limits import MAX_ARGUMENTS_BYTES, MAX_NESTING

Count = Callable[[], Awaitable[int]]
Work = Callable[..., Awaitable[None]]


class Reading(msgspec.Struct):
    value: float


@dataclasses.dataclass
class Sample:
    value: float


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        [1.0, float("nan")],
        {"a": {"b": float("inf")}},
        Reading(float("nan")),
        Sample(float("inf")),
    ],
    ids=["nan", "inf", "-inf", "nested-list", "nested-dict", "struct", "dataclass"],
)
async def test_a_value_json_cannot_carry_is_refused_and_nothing_written(
    runner: TaskRunner, count_jobs: Count, value: Any
):
    @runner.task
    async def record(value: Any) -> None: ...

    with pytest.raises(InvalidArguments, match=r"argument 'value' has a float nan or inf"):
        await record.enqueue(value)
    assert await count_jobs() == 0


async def test_a_nan_given_by_keyword_is_refused_too(runner: TaskRunner, count_jobs: Count):
    @runner.task
    async def record(value: float, *, scale: float = 1.0) -> None: ...

    with pytest.raises(InvalidArguments, match="'scale'"):
        await record.enqueue(1.0, scale=float("nan"))
    assert await count_jobs() == 0


async def test_none_and_the_text_null_are_still_accepted(runner: TaskRunner, work: Work):
    seen: list[Any] = []

    @runner.task
    async def record(value: Any, label: str) -> None:
        seen.append((value, label))

    await record.enqueue(None, "null")
    await work()
    assert seen == [(None, "null")]


async def test_a_nan_in_one_call_of_a_batch_refuses_the_whole_batch(
    runner: TaskRunner, count_jobs: Count
):
    @runner.task
    async def record(value: float) -> None: ...

    with pytest.raises(InvalidArguments, match=r"call #2"):
        await runner.enqueue_many(record, [(1.0,), (2.0,), (float("nan"),)])
    assert await count_jobs() == 0


@pytest.mark.parametrize(
    "value", ["a\x00b", ["x", {"k\x00": 1}], {"nul": "\x00"}], ids=["str", "key", "nested"]
)
async def test_a_nul_character_in_the_arguments_is_refused(
    runner: TaskRunner, count_jobs: Count, value: Any
):
    @runner.task
    async def record(value: Any) -> None: ...

    with pytest.raises(InvalidArguments, match=r"'value' has a NUL character"):
        await record.enqueue(value)
    assert await count_jobs() == 0


async def test_the_text_backslash_u0000_is_not_a_nul_character(runner: TaskRunner, work: Work):
    seen: list[str] = []

    @runner.task
    async def record(text: str) -> None:
        seen.append(text)

    await record.enqueue("\\u0000 and \\\\u0000")
    await work()
    assert seen == ["\\u0000 and \\\\u0000"]


async def test_a_lone_surrogate_is_refused(runner: TaskRunner, count_jobs: Count):
    @runner.task
    async def record(text: str) -> None: ...

    with pytest.raises(InvalidArguments, match="lone surrogate"):
        await record.enqueue("\ud800")
    assert await count_jobs() == 0


async def test_nesting_deeper_than_the_limit_is_refused_without_recursion_error(
    runner: TaskRunner, count_jobs: Count
):
    @runner.task
    async def record(value: Any) -> None: ...

    for depth in (MAX_NESTING + 1, 5_000):
        with pytest.raises(InvalidArguments, match=f"deeper than {MAX_NESTING}"):
            await record.enqueue(nested(depth))
    assert await count_jobs() == 0


async def test_nesting_up_to_the_limit_runs(runner: TaskRunner, work: Work):
    seen: list[Any] = []

    @runner.task
    async def record(value: Any) -> None:
        seen.append(value)

    await record.enqueue(nested(MAX_NESTING - 1))
    await work()
    assert seen == [nested(MAX_NESTING - 1)]


async def test_brackets_inside_strings_do_not_count_as_nesting(runner: TaskRunner):
    @runner.task
    async def record(text: str) -> None: ...

    job = await record.enqueue("[" * (MAX_NESTING * 2))
    assert job.args == ["[" * (MAX_NESTING * 2)]


async def test_arguments_larger_than_the_limit_are_refused(runner: TaskRunner, count_jobs: Count):
    @runner.task
    async def record(text: str) -> None: ...

    with pytest.raises(InvalidArguments, match="bytes encoded"):
        await record.enqueue("x" * MAX_ARGUMENTS_BYTES)
    assert await count_jobs() == 0


async def test_a_row_whose_kwargs_is_not_an_object_fails_once_without_retries(
    runner: TaskRunner, work: Work
):
    @runner.task(max_attempts=3)
    async def record(value: int = 0) -> None: ...

    job = await record.enqueue(1)
    await runner.job_queue.db.execute(
        f"UPDATE \"{runner.schema}\".jobs SET args = '[]', kwargs = '[1]' WHERE id = $1", job.id
    )
    await work()

    failed = await runner.get_job(job.id)
    assert failed is not None
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert "corrupted" in (failed.last_error or "")
