"""Enqueue options and job ids that do not fit raise InvalidArguments naming the field,
before anything is written; nothing reaches the database to be refused there."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from taskrunner import InvalidArguments, TaskRunner, TaskRunnerError, request_context
from taskrunner.limits import MAX_KEY_LENGTH, MAX_NAME_LENGTH, MAX_REQUEST_ID_LENGTH

Count = Callable[[], Awaitable[int]]

BAD_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"delay": 1e12}, "delay"),
    ({"delay": float("nan")}, "delay"),
    ({"delay": float("inf")}, "delay"),
    ({"delay": -5}, "delay"),
    ({"delay": [1]}, "delay"),
    ({"delay": True}, "delay"),
    ({"delay": timedelta(days=999_999)}, "delay"),
    ({"run_at": datetime(1, 1, 1, tzinfo=UTC)}, "run_at"),
    ({"run_at": datetime.max.replace(tzinfo=UTC)}, "run_at"),
    ({"run_at": datetime.max.replace(tzinfo=timezone(timedelta(hours=-5)))}, "run_at"),
    ({"run_at": datetime(2030, 1, 1)}, "run_at"),
    ({"run_at": "2030-01-01T00:00:00Z"}, "run_at"),
    ({"priority": 2**31}, "priority"),
    ({"priority": -(2**31) - 1}, "priority"),
    ({"priority": 1.5}, "priority"),
    ({"priority": "1"}, "priority"),
    ({"max_attempts": "3"}, "max_attempts"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"max_attempts": 2**31}, "max_attempts"),
    ({"max_attempts": 2.0}, "max_attempts"),
    ({"queue": ""}, "queue"),
    ({"queue": 5}, "queue"),
    ({"queue": ["a"]}, "queue"),
    ({"queue": "a\x00b"}, "queue"),
    ({"queue": "q" * (MAX_NAME_LENGTH + 1)}, "queue"),
    ({"queue": "\udc80"}, "queue"),
    ({"idempotency_key": ""}, "idempotency_key"),
    ({"idempotency_key": 5}, "idempotency_key"),
    ({"idempotency_key": "k\x00"}, "idempotency_key"),
    ({"idempotency_key": "k" * (MAX_KEY_LENGTH + 1)}, "idempotency_key"),
    ({"idempotency_key": "\ud800"}, "idempotency_key"),
    ({"request_id": 5}, "request_id"),
    ({"request_id": "r\x00"}, "request_id"),
    ({"request_id": "r" * (MAX_REQUEST_ID_LENGTH + 1)}, "request_id"),
    ({"connection": "nope"}, "connection"),
    ({"delay": 1, "run_at": datetime(2030, 1, 1, tzinfo=UTC)}, "delay"),
]


@pytest.mark.parametrize(
    ("options", "field"), BAD_OPTIONS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_OPTIONS)]
)
async def test_a_bad_enqueue_option_raises_invalid_arguments_naming_it_and_writes_nothing(
    runner: TaskRunner, count_jobs: Count, options: dict[str, Any], field: str
):
    @runner.task
    async def send(to: str) -> None: ...

    with pytest.raises(InvalidArguments) as raised:
        await send.enqueue("a@b.c", **options)

    assert raised.value.field == field
    assert field in str(raised.value)
    assert await count_jobs() == 0


@pytest.mark.parametrize(("options", "field"), BAD_OPTIONS[:20])
async def test_a_bad_option_of_enqueue_many_raises_invalid_arguments_and_writes_nothing(
    runner: TaskRunner, count_jobs: Count, options: dict[str, Any], field: str
):
    @runner.task
    async def send(to: str) -> None: ...

    with pytest.raises(InvalidArguments, match=field):
        await runner.enqueue_many(send, [("a",), ("b",)], **options)
    assert await count_jobs() == 0


async def test_an_option_error_is_both_a_value_error_and_a_type_error(runner: TaskRunner):
    @runner.task
    async def send(to: str) -> None: ...

    with pytest.raises(InvalidArguments) as raised:
        await send.enqueue("a@b.c", delay=-1)
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, TypeError)


async def test_a_nan_delay_does_not_show_the_arguments_or_request_id(runner: TaskRunner):
    @runner.task
    async def send(to: str) -> None: ...

    with pytest.raises(InvalidArguments) as raised:
        await send.enqueue("secret@example.com", delay=float("nan"), request_id="rid-123")
    assert "secret@example.com" not in str(raised.value)
    assert "rid-123" not in str(raised.value)


async def test_the_widest_priority_and_time_range_are_accepted_and_read_back(runner: TaskRunner):
    @runner.task
    async def send(to: str) -> None: ...

    top = await send.enqueue("a", priority=2**31 - 1, run_at=datetime(8999, 1, 1, tzinfo=UTC))
    bottom = await send.enqueue("b", priority=-(2**31), delay=100 * 365 * 86400 - 1)

    assert (await runner.get_job(top.id)) == top
    assert (await runner.get_job(bottom.id)) == bottom
    assert await runner.stats()


async def test_a_key_count_that_does_not_match_the_batch_raises_invalid_arguments(
    runner: TaskRunner, count_jobs: Count
):
    @runner.task
    async def send(to: str) -> None: ...

    with pytest.raises(InvalidArguments, match="idempotency_keys has 1 keys for 2 calls"):
        await runner.enqueue_many(send, [("a",), ("b",)], idempotency_keys=["k"])
    assert await count_jobs() == 0


async def test_a_bad_key_in_a_batch_names_its_call(runner: TaskRunner, count_jobs: Count):
    @runner.task
    async def send(to: str) -> None: ...

    with pytest.raises(InvalidArguments, match=r"call #1.*idempotency_key"):
        await runner.enqueue_many(send, [("a",), ("b",)], idempotency_keys=["k", ""])
    assert await count_jobs() == 0


async def test_calls_that_are_not_iterable_raise_invalid_arguments(runner: TaskRunner):
    @runner.task
    async def send(to: str) -> None: ...

    with pytest.raises(InvalidArguments, match="calls"):
        await runner.enqueue_many(send, 5)  # type: ignore[arg-type]


BAD_IDS = [1.5, True, "1", None, 2**63, [1]]


@pytest.mark.parametrize("verb", ["get_job", "cancel", "pause", "resume", "retry", "wait"])
@pytest.mark.parametrize("job_id", BAD_IDS, ids=[repr(i) for i in BAD_IDS])
async def test_a_job_id_that_is_not_an_integer_raises_invalid_arguments(
    runner: TaskRunner, verb: str, job_id: Any
):
    @runner.task
    async def send(to: str) -> None: ...

    job = await send.enqueue("a")
    assert job.id == 1

    with pytest.raises(InvalidArguments, match="job_id"):
        await getattr(runner, verb)(job_id)
    again = await runner.get_job(job.id)
    assert again is not None
    assert again.status == job.status


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"status": "bogus"}, "status"),
        ({"queue": "a\x00"}, "queue"),
        ({"task": 5}, "task"),
        ({"before_id": 1.5}, "before_id"),
        ({"limit": -1}, "limit"),
        ({"limit": "10"}, "limit"),
    ],
)
async def test_a_bad_list_jobs_filter_raises_invalid_arguments(
    runner: TaskRunner, filters: dict[str, Any], field: str
):
    with pytest.raises(InvalidArguments, match=field):
        await runner.list_jobs(**filters)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"dsn": ""}, "dsn"),
        ({"dsn": "  "}, "dsn"),
        ({"idempotency_ttl": float("inf")}, "idempotency_ttl"),
        ({"idempotency_ttl": -1}, "idempotency_ttl"),
        ({"pool_size": 0}, "pool_size"),
    ],
)
def test_a_bad_runner_option_raises_invalid_arguments(options: dict[str, Any], field: str):
    options.setdefault("dsn", "postgresql://postgres@127.0.0.1:1/unused")
    with pytest.raises(InvalidArguments, match=field):
        TaskRunner(schema="t_unused", **options)


def test_an_empty_dsn_is_not_replaced_by_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TASKRUNNER_DSN", "postgresql://postgres@127.0.0.1:1/unused")
    with pytest.raises(TaskRunnerError, match="dsn"):
        TaskRunner("")


@pytest.mark.parametrize("name", ["a\x00b", "n" * 1000])
async def test_a_bad_name_enqueued_by_name_raises_invalid_arguments_naming_the_name(
    runner: TaskRunner, count_jobs: Count, name: Any
):
    with pytest.raises(InvalidArguments, match="task name") as raised:
        await runner.enqueue_by_name(name, 1)
    assert "unchecked_call" not in str(raised.value)
    assert await count_jobs() == 0


@pytest.mark.parametrize("request_id", ["r\x00", "r" * (MAX_REQUEST_ID_LENGTH + 1), 5])
def test_a_bad_request_context_raises_invalid_arguments(request_id: Any):
    with pytest.raises(InvalidArguments, match="request_id"), request_context(request_id):
        pass


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 1.5}, "concurrency"),
        ({"shutdown_timeout": float("inf")}, "shutdown_timeout"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"rescue_interval": float("nan")}, "rescue_interval"),
        ({"process_pool_size": 0}, "process_pool_size"),
    ],
)
async def test_a_bad_worker_option_raises_invalid_arguments(
    runner: TaskRunner, options: dict[str, Any], field: str
):
    with pytest.raises(InvalidArguments, match=field):
        await asyncio.wait_for(
            runner.run_worker(stop_when_idle=True, handle_signals=False, **options), 10
        )
