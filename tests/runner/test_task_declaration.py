"""Task options, type hints, retry policies and lease lengths are checked when a task is
declared or a value is given, never left to fail a worker later."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
import tenacity

from taskrunner import InvalidArguments, JobStatus, Retry, RetryLater, TaskRunner, current_job

Work = Callable[..., Awaitable[None]]


def module_level(n: int) -> int:
    return n


@pytest.fixture
def registry() -> TaskRunner:
    """A runner that is never opened: decorating needs no database."""
    return TaskRunner("postgresql://postgres@127.0.0.1:1/unused", schema="t_unused")


# ---- type hints ------------------------------------------------------------------------


def test_a_type_hint_that_cannot_be_resolved_is_refused_naming_it(registry: TaskRunner):
    async def report(account: NoSuchType, when: int) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(InvalidArguments, match=r"account: 'NoSuchType'") as raised:
        registry.task(report)
    assert "when" not in str(raised.value)
    assert "report" not in registry.tasks


def test_an_unresolvable_return_hint_is_refused_too(registry: TaskRunner):
    async def report(n: int) -> Missing: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(InvalidArguments, match="return: 'Missing'"):
        registry.task(report)


# ---- process executor ------------------------------------------------------------------


def test_a_local_function_is_refused_for_the_process_executor(registry: TaskRunner):
    def local(n: int) -> int:
        return n

    with pytest.raises(InvalidArguments, match="local"):
        registry.task(executor="process")(local)


def test_a_lambda_is_refused_for_the_process_executor(registry: TaskRunner):
    with pytest.raises(InvalidArguments, match="lambda"):
        registry.task(executor="process", name="lam")(lambda n: n)


def test_a_module_level_function_is_accepted_for_the_process_executor(registry: TaskRunner):
    task = registry.task(executor="process")(module_level)
    assert task.executor == "process"


# ---- options -----------------------------------------------------------------------------

BAD_TASK_OPTIONS: list[tuple[dict[str, Any], str]] = [
    ({"lease": float("inf")}, "lease"),
    ({"lease": float("nan")}, "lease"),
    ({"lease": 1e15}, "lease"),
    ({"lease": 0}, "lease"),
    ({"lease": "30"}, "lease"),
    ({"timeout": float("inf")}, "timeout"),
    ({"timeout": -1}, "timeout"),
    ({"timeout": 1e300}, "timeout"),
    ({"priority": 1.5}, "priority"),
    ({"priority": 2**31}, "priority"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"max_attempts": "3"}, "max_attempts"),
    ({"queue": ""}, "queue"),
    ({"queue": "a\x00"}, "queue"),
    ({"name": "a\x00"}, "name"),
    ({"name": "n" * 1000}, "name"),
    ({"retry": "nope"}, "retry"),
    ({"executor": "bogus"}, "executor"),
]


@pytest.mark.parametrize(("options", "field"), BAD_TASK_OPTIONS)
def test_a_bad_task_option_is_refused_at_decoration_naming_it(
    registry: TaskRunner, options: dict[str, Any], field: str
):
    async def job() -> None: ...

    with pytest.raises(InvalidArguments, match=field) as raised:
        registry.task(**options)(job)
    assert raised.value.field == field
    assert not registry.tasks


# ---- retry policies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"wait": "nope"}, "wait"),
        ({"wait": tenacity.wait_fixed(float("inf"))}, "wait"),
        ({"wait": tenacity.wait_fixed(float("nan"))}, "wait"),
        ({"wait": lambda state: 1 / 0}, "wait"),
        ({"max_attempts": -1}, "max_attempts"),
        ({"max_attempts": 1.5}, "max_attempts"),
        ({"retry_on": ("ValueError",)}, "retry_on"),
    ],
)
def test_a_bad_retry_policy_is_refused_when_it_is_made(settings: dict[str, Any], field: str):
    with pytest.raises(InvalidArguments, match=field):
        Retry(**settings)


def test_a_wait_that_grows_past_the_limit_is_capped_not_stored_as_is():
    policy = Retry(max_attempts=100, wait=tenacity.wait_exponential(multiplier=1, max=1e300))
    delay = policy.delay_after(ValueError(), 90)
    assert delay is not None
    assert delay <= 100 * 365 * 86400


# ---- values given inside a handler -------------------------------------------------------


@pytest.mark.parametrize("delay", [float("inf"), float("nan"), 1e15, -1.0, "5"])
def test_retry_later_refuses_a_delay_no_row_can_hold(delay: Any):
    with pytest.raises(InvalidArguments, match="RetryLater delay"):
        RetryLater(delay)


def test_retry_later_takes_seconds_or_a_timedelta():
    assert RetryLater(timedelta(minutes=1)).delay == 60.0
    assert RetryLater(2).delay == 2.0


async def test_a_bad_retry_later_fails_that_attempt_and_the_other_jobs_finish(
    runner: TaskRunner, work: Work
):
    @runner.task(retry=Retry(max_attempts=1))
    async def bad() -> None:
        raise RetryLater(float("inf"))

    @runner.task
    async def good(n: int) -> int:
        return n

    bad_job = await bad.enqueue()
    good_jobs = [await good.enqueue(n) for n in range(5)]
    await work()

    failed = await runner.get_job(bad_job.id)
    assert failed is not None
    assert failed.status is JobStatus.FAILED
    assert "RetryLater delay" in (failed.last_error or "")
    for job in good_jobs:
        assert await runner.result(job.id, timeout=5) == job.args[0]


@pytest.mark.parametrize("seconds", [float("inf"), 1e15])
async def test_a_bad_extend_lease_raises_at_once_and_never_breaks_other_renewals(
    runner: TaskRunner, work: Work, seconds: float
):
    refused: list[BaseException] = []

    @runner.task(lease=1.0)
    async def bad() -> None:
        ctx = current_job()
        assert ctx is not None
        try:
            await ctx.extend_lease(seconds)
        except Exception as exc:  # the handler carries on: its lease must too
            refused.append(exc)
        await asyncio.sleep(3)

    @runner.task(lease=0.6)
    async def slow(n: int) -> int:
        await asyncio.sleep(3)  # several leases long: only renewals keep the job
        return n

    bad_job = await bad.enqueue()
    slow_job = await slow.enqueue(7)
    await work()

    assert len(refused) == 1
    assert isinstance(refused[0], InvalidArguments)
    for job_id in (bad_job.id, slow_job.id):
        done = await runner.get_job(job_id)
        assert done is not None
        assert (done.status, done.attempts) == (JobStatus.SUCCEEDED, 1)


@pytest.mark.parametrize("seconds", [float("inf"), float("nan")])
async def test_a_bad_extend_lease_fails_that_attempt_with_a_clear_error(
    runner: TaskRunner, work: Work, seconds: float
):
    @runner.task(retry=Retry(max_attempts=1))
    async def bad() -> None:
        ctx = current_job()
        assert ctx is not None
        await ctx.extend_lease(seconds)

    job = await bad.enqueue()
    await work()

    failed = await runner.get_job(job.id)
    assert failed is not None
    assert failed.status is JobStatus.FAILED
    assert "extend_lease seconds must be a finite number" in (failed.last_error or "")
