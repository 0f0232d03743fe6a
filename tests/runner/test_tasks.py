"""Tasks: `@runner.task`, its options, direct calls, and arguments checked at enqueue time."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from taskrunner import InvalidArguments, Retry, TaskRunner, TaskRunnerError


def module_level_task(report_id: int) -> dict[str, int]:
    return {"report_id": report_id}


def process_task(n: int) -> int:
    return n * 2


class Point(msgspec.Struct):
    x: int
    y: int


@dataclasses.dataclass
class Address:
    street: str
    number: int


@pytest.fixture
def registry() -> TaskRunner:
    """A runner that is never opened: decorating needs no database."""
    return TaskRunner("postgresql://postgres@127.0.0.1:1/unused", schema="t_unused")


# ---- names ---------------------------------------------------------------------------


def test_a_task_is_named_after_its_module_and_qualified_name(registry: TaskRunner):
    task = registry.task(module_level_task)

    assert task.name == f"{__name__}.module_level_task"


def test_a_nested_function_is_named_with_its_full_qualified_name(registry: TaskRunner):
    @registry.task
    async def send_email(to: str) -> None: ...

    assert send_email.name == f"{__name__}.{send_email.__qualname__}"
    assert send_email.name.endswith(
        "test_a_nested_function_is_named_with_its_full_qualified_name.<locals>.send_email"
    )


def test_the_name_option_replaces_the_default_name(registry: TaskRunner):
    @registry.task(name="reports.build")
    def build_report(report_id: int) -> dict[str, int]:
        return {}

    assert build_report.name == "reports.build"


def test_a_task_is_registered_on_its_runner_under_its_name(registry: TaskRunner):
    @registry.task(name="reports.build")
    def build_report(report_id: int) -> dict[str, int]:
        return {}

    assert registry.tasks["reports.build"] is build_report


def test_the_decorator_with_empty_parentheses_registers_with_defaults(registry: TaskRunner):
    @registry.task()
    async def send_email(to: str) -> None: ...

    assert send_email.name == f"{__name__}.{send_email.__qualname__}"
    assert (send_email.queue, send_email.priority, send_email.executor) == ("default", 0, "async")


# ---- executors -----------------------------------------------------------------------


def test_a_coroutine_function_runs_on_the_async_executor_by_default(registry: TaskRunner):
    @registry.task
    async def send_email(to: str) -> None: ...

    assert send_email.executor == "async"


def test_a_plain_function_runs_on_the_thread_executor_by_default(registry: TaskRunner):
    @registry.task
    def add(a: int, b: int) -> int:
        return a + b

    assert add.executor == "thread"


# ---- options -------------------------------------------------------------------------


def test_every_decorator_option_is_kept_on_the_task(registry: TaskRunner):
    retry = Retry(max_attempts=7)
    task = registry.task(
        name="reports.build",
        queue="reports",
        priority=3,
        max_attempts=5,
        retry=retry,
        timeout=300.0,
        lease=12.0,
        executor="process",
    )(process_task)

    assert task.name == "reports.build"
    assert task.queue == "reports"
    assert task.priority == 3
    assert task.max_attempts == 5
    assert task.retry is retry
    assert task.timeout == 300.0
    assert task.lease == 12.0
    assert task.executor == "process"


def test_max_attempts_defaults_to_the_retry_policys(registry: TaskRunner):
    @registry.task(retry=Retry(max_attempts=3))
    async def flaky() -> None: ...

    assert flaky.max_attempts == 3


async def test_a_new_job_takes_queue_priority_and_max_attempts_from_its_task(
    runner: TaskRunner,
):
    @runner.task(queue="reports", priority=4, max_attempts=2)
    async def build(report_id: int) -> None: ...

    job = await build.enqueue(1)

    assert (job.queue, job.priority, job.max_attempts) == ("reports", 4, 2)


def test_an_unknown_decorator_option_raises_type_error(registry: TaskRunner):
    with pytest.raises(TypeError, match="colour"):
        registry.task(colour="red")


ENQUEUE_OPTION_NAMES = [
    "idempotency_key",
    "request_id",
    "delay",
    "run_at",
    "priority",
    "queue",
    "max_attempts",
    "connection",
]


@pytest.mark.parametrize("option", ENQUEUE_OPTION_NAMES)
def test_a_parameter_named_like_an_enqueue_option_is_refused_naming_the_clash(
    registry: TaskRunner, option: str
):
    namespace: dict[str, Any] = {}
    exec(
        textwrap.dedent(
            f"""
            async def clashing(to: str, {option}: Any = None) -> None:
                pass
            """
        ),
        {"Any": Any},
        namespace,
    )

    with pytest.raises(TypeError, match=option):
        registry.task(namespace["clashing"])
    assert registry.tasks == {}


# ---- calling a task directly ---------------------------------------------------------


async def test_awaiting_an_async_task_calls_the_function_directly(registry: TaskRunner):
    sent: list[tuple[str, str]] = []

    @registry.task
    async def send_email(to: str, template: str = "welcome") -> str:
        sent.append((to, template))
        return f"sent to {to}"

    result = await send_email("a@b.c")

    assert result == "sent to a@b.c"
    assert sent == [("a@b.c", "welcome")]


def test_calling_a_plain_task_directly_returns_its_value(registry: TaskRunner):
    @registry.task
    def add(a: int, b: int) -> int:
        return a + b

    assert add(1, 2) == 3


# ---- arguments: checked at enqueue time, nothing written when they do not fit -------


async def test_an_argument_of_the_wrong_type_raises_invalid_arguments(
    runner: TaskRunner, count_jobs: Callable[[], Awaitable[int]]
):
    @runner.task
    async def build(report_id: int) -> None: ...

    with pytest.raises(InvalidArguments):
        await build.enqueue("not a number")
    assert await count_jobs() == 0


async def test_a_missing_argument_raises_invalid_arguments(
    runner: TaskRunner, count_jobs: Callable[[], Awaitable[int]]
):
    @runner.task
    async def send_email(to: str, template: str = "welcome") -> None: ...

    with pytest.raises(InvalidArguments):
        await send_email.enqueue(template="x")
    assert await count_jobs() == 0


async def test_an_unexpected_keyword_argument_raises_invalid_arguments(
    runner: TaskRunner, count_jobs: Callable[[], Awaitable[int]]
):
    @runner.task
    async def send_email(to: str) -> None: ...

    with pytest.raises(InvalidArguments):
        await send_email.enqueue("a@b.c", cc="c@d.e")
    assert await count_jobs() == 0


async def test_too_many_positional_arguments_raise_invalid_arguments(
    runner: TaskRunner, count_jobs: Callable[[], Awaitable[int]]
):
    @runner.task
    async def send_email(to: str) -> None: ...

    with pytest.raises(InvalidArguments):
        await send_email.enqueue("a@b.c", "extra")
    assert await count_jobs() == 0


async def test_a_value_that_is_not_json_encodable_raises_invalid_arguments(
    runner: TaskRunner, count_jobs: Callable[[], Awaitable[int]]
):
    @runner.task
    async def store(payload: Any) -> None: ...

    with pytest.raises(InvalidArguments):
        await store.enqueue(object())
    assert await count_jobs() == 0


async def test_a_wrong_nested_field_type_raises_invalid_arguments(
    runner: TaskRunner, count_jobs: Callable[[], Awaitable[int]]
):
    @runner.task
    async def draw(point: Point) -> None: ...

    with pytest.raises(InvalidArguments):
        await draw.enqueue({"x": 1, "y": "two"})
    assert await count_jobs() == 0


async def test_invalid_arguments_is_a_taskrunner_error_naming_the_task(runner: TaskRunner):
    @runner.task(name="reports.build")
    async def build(report_id: int) -> None: ...

    with pytest.raises(TaskRunnerError, match=r"reports\.build") as raised:
        await build.enqueue("x")
    assert isinstance(raised.value, InvalidArguments)


async def test_the_job_keeps_the_call_as_given_in_args_and_kwargs(runner: TaskRunner):
    @runner.task
    async def send_email(to: str, template: str = "welcome") -> None: ...

    job = await send_email.enqueue("a@b.c", template="x")

    assert (job.args, job.kwargs) == (["a@b.c"], {"template": "x"})


# ---- arguments: the handler receives typed values ------------------------------------


async def test_the_handler_receives_a_datetime_as_a_datetime(
    runner: TaskRunner, work: Callable[[], Awaitable[None]]
):
    received: list[Any] = []
    when = datetime(2024, 5, 17, 12, 30, tzinfo=UTC)

    @runner.task
    async def remind(at: datetime) -> None:
        received.append(at)

    await remind.enqueue(when)
    await work()

    assert received == [when]
    assert isinstance(received[0], datetime)


async def test_the_handler_receives_a_struct_as_that_struct(
    runner: TaskRunner, work: Callable[[], Awaitable[None]]
):
    received: list[Any] = []

    @runner.task
    async def draw(point: Point) -> None:
        received.append(point)

    await draw.enqueue(Point(x=1, y=2))
    await work()

    assert received == [Point(x=1, y=2)]
    assert type(received[0]) is Point


async def test_the_handler_receives_a_dataclass_as_that_dataclass(
    runner: TaskRunner, work: Callable[[], Awaitable[None]]
):
    received: list[Any] = []

    @runner.task
    def deliver(address: Address) -> None:  # thread executor
        received.append(address)

    await deliver.enqueue(Address(street="Main", number=5))
    await work()

    assert received == [Address(street="Main", number=5)]
    assert type(received[0]) is Address


async def test_the_handler_receives_keyword_arguments_and_defaults(
    runner: TaskRunner, work: Callable[[], Awaitable[None]]
):
    received: list[tuple[str, str, tuple[int, ...]]] = []

    @runner.task
    async def send_email(to: str, template: str = "welcome", *, ids: tuple[int, ...]) -> None:
        received.append((to, template, ids))

    await send_email.enqueue("a@b.c", ids=(1, 2))
    await work()

    assert received == [("a@b.c", "welcome", (1, 2))]
