"""Enqueueing: by task, by name, with options, inside the caller's transaction; the Job."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import msgspec
import pytest

from taskrunner import Job, JobStatus, TaskRunner, TaskRunnerError, UnknownTask

Count = Callable[[], Awaitable[int]]
Work = Callable[..., Awaitable[None]]

JOB_FIELDS = [
    "id", "task", "queue", "status", "args", "kwargs", "priority", "attempts",
    "max_attempts", "run_at", "created_at", "started_at", "finished_at", "last_error",
    "result", "request_id", "idempotency_key", "deduplicated",
]  # fmt: skip


def close_to(a: datetime, b: datetime, seconds: float = 1.0) -> bool:
    return abs((a - b).total_seconds()) < seconds


# ---- how to name the task ------------------------------------------------------------


async def test_enqueue_by_task_object_queues_a_job_of_that_task(runner: TaskRunner):
    @runner.task
    async def send_email(to: str, template: str = "welcome") -> None: ...

    job = await runner.enqueue(send_email, "a@b.c", template="x")

    assert job.task == send_email.name
    assert (job.args, job.kwargs) == (["a@b.c"], {"template": "x"})


async def test_task_enqueue_queues_a_job_of_that_task(runner: TaskRunner):
    @runner.task
    async def send_email(to: str) -> None: ...

    job = await send_email.enqueue("a@b.c")

    assert job.task == send_email.name
    assert job.args == ["a@b.c"]


async def test_enqueue_by_registered_name_queues_a_job_of_that_task(runner: TaskRunner):
    @runner.task(name="reports.build")
    def build_report(report_id: int) -> dict[str, int]:
        return {}

    job = await runner.enqueue("reports.build", 42)

    assert (job.task, job.args) == ("reports.build", [42])


async def test_enqueue_by_name_checks_the_arguments_too(runner: TaskRunner, count_jobs: Count):
    @runner.task(name="reports.build")
    def build_report(report_id: int) -> dict[str, int]:
        return {}

    with pytest.raises(TaskRunnerError):
        await runner.enqueue("reports.build", "forty-two")
    assert await count_jobs() == 0


async def test_an_unregistered_name_raises_unknown_task(runner: TaskRunner, count_jobs: Count):
    with pytest.raises(UnknownTask, match=r"reports\.missing"):
        await runner.enqueue("reports.missing", 1)
    assert await count_jobs() == 0


async def test_a_task_registered_only_on_another_runner_is_unknown(
    runner: TaskRunner, count_jobs: Count
):
    other = TaskRunner("postgresql://postgres@127.0.0.1:1/unused", schema="t_unused")

    @other.task(name="elsewhere.only")
    async def foreign(x: int) -> None: ...

    with pytest.raises(UnknownTask):
        await runner.enqueue(foreign, 1)
    assert await count_jobs() == 0


# ---- the returned Job ----------------------------------------------------------------


async def test_the_returned_job_has_every_field_of_the_contract(runner: TaskRunner):
    @runner.task
    async def send_email(to: str) -> None: ...

    job = await send_email.enqueue("a@b.c")

    assert isinstance(job, Job)
    names = {f.name for f in msgspec.structs.fields(Job)}
    assert set(JOB_FIELDS) <= names
    for name in JOB_FIELDS:
        getattr(job, name)


async def test_a_new_job_is_queued_with_no_attempts_and_nothing_finished(runner: TaskRunner):
    @runner.task
    async def send_email(to: str) -> None: ...

    job = await send_email.enqueue("a@b.c")

    assert job.status is JobStatus.QUEUED
    assert job.attempts == 0
    assert isinstance(job.id, int)
    assert (job.queue, job.priority) == ("default", 0)
    assert job.max_attempts >= 1
    assert job.run_at.tzinfo is not None
    assert job.created_at.tzinfo is not None
    assert (job.started_at, job.finished_at, job.last_error, job.result) == (None,) * 4
    assert job.idempotency_key is None
    assert job.deduplicated is False


async def test_get_job_returns_the_job_enqueue_returned(runner: TaskRunner):
    @runner.task
    async def send_email(to: str) -> None: ...

    job = await send_email.enqueue("a@b.c")

    assert await runner.get_job(job.id) == job


def test_job_status_is_a_str_enum_of_lowercase_words():
    assert issubclass(JobStatus, str)
    assert {s.value for s in JobStatus} == {
        "queued", "running", "succeeded", "failed", "cancelled", "paused", "waiting",
    }  # fmt: skip
    assert JobStatus.QUEUED == "queued"
    assert JobStatus("paused") is JobStatus.PAUSED


# ---- when: delay and run_at ----------------------------------------------------------


async def test_without_delay_a_job_is_due_when_created(runner: TaskRunner):
    @runner.task
    async def ping() -> None: ...

    job = await ping.enqueue()

    assert close_to(job.run_at, job.created_at, 0.5)


async def test_a_delay_in_seconds_sets_run_at_that_far_ahead(runner: TaskRunner):
    @runner.task
    async def ping() -> None: ...

    job = await ping.enqueue(delay=60)

    assert close_to(job.run_at, job.created_at + timedelta(seconds=60))


async def test_a_delay_as_timedelta_sets_run_at_that_far_ahead(runner: TaskRunner):
    @runner.task
    async def ping() -> None: ...

    job = await ping.enqueue(delay=timedelta(minutes=5))

    assert close_to(job.run_at, job.created_at + timedelta(minutes=5))


async def test_an_aware_run_at_is_kept_as_the_jobs_run_at(runner: TaskRunner):
    @runner.task
    async def ping() -> None: ...

    when = datetime(2031, 1, 2, 3, 4, 5, 678000, tzinfo=timezone(timedelta(hours=2)))

    job = await ping.enqueue(run_at=when)

    assert job.run_at == when


async def test_a_naive_run_at_raises_value_error_and_writes_nothing(
    runner: TaskRunner, count_jobs: Count
):
    @runner.task
    async def ping() -> None: ...

    with pytest.raises(ValueError, match="run_at"):
        await ping.enqueue(run_at=datetime(2031, 1, 2, 3, 4, 5))
    assert await count_jobs() == 0


async def test_a_negative_delay_raises_value_error(runner: TaskRunner, count_jobs: Count):
    @runner.task
    async def ping() -> None: ...

    with pytest.raises(ValueError, match="delay"):
        await ping.enqueue(delay=-1)
    assert await count_jobs() == 0


async def test_delay_and_run_at_together_raise_value_error(runner: TaskRunner):
    @runner.task
    async def ping() -> None: ...

    with pytest.raises(ValueError):
        await ping.enqueue(delay=5, run_at=datetime.now(UTC))


async def test_a_delayed_job_does_not_run_before_its_time(runner: TaskRunner, work: Work):
    ran: list[int] = []

    @runner.task
    async def ping(n: int) -> None:
        ran.append(n)

    job = await ping.enqueue(1, delay=3600)
    await work()

    assert ran == []
    later = await runner.get_job(job.id)
    assert later is not None
    assert (later.status, later.attempts) == (JobStatus.QUEUED, 0)


# ---- order: priority, then oldest run_at ---------------------------------------------


async def test_a_higher_priority_job_runs_first(runner: TaskRunner, work: Work):
    order: list[str] = []

    @runner.task
    async def record(label: str) -> None:
        order.append(label)

    await record.enqueue("low", priority=0)  # the oldest, yet the lowest priority
    await record.enqueue("high", priority=10)
    await record.enqueue("middle", priority=5)
    await work(concurrency=1)

    assert order == ["high", "middle", "low"]


async def test_equal_priority_jobs_run_oldest_run_at_first(runner: TaskRunner, work: Work):
    order: list[str] = []

    @runner.task
    async def record(label: str) -> None:
        order.append(label)

    now = datetime.now(UTC)
    await record.enqueue("5s ago", run_at=now - timedelta(seconds=5))
    await record.enqueue("20s ago", run_at=now - timedelta(seconds=20))
    await record.enqueue("10s ago", run_at=now - timedelta(seconds=10))
    await work(concurrency=1)

    assert order == ["20s ago", "10s ago", "5s ago"]


async def test_the_priority_option_overrides_the_tasks_priority(runner: TaskRunner):
    @runner.task(priority=3)
    async def ping() -> None: ...

    job = await ping.enqueue(priority=9)

    assert job.priority == 9


async def test_running_a_worker_emits_no_deprecation_warning(runner: TaskRunner):
    # The shared `work` fixture ignores this one warning; here it is not ignored.
    @runner.task
    async def ping() -> None: ...

    await ping.enqueue()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        await runner.run_worker(
            concurrency=1, stop_when_idle=True, poll_interval=0.05, handle_signals=False
        )


# ---- queue and max_attempts ----------------------------------------------------------


async def test_the_queue_option_overrides_the_tasks_queue(runner: TaskRunner):
    @runner.task(queue="reports")
    async def build() -> None: ...

    job = await build.enqueue(queue="urgent")

    assert job.queue == "urgent"


async def test_the_max_attempts_option_overrides_the_tasks_max_attempts(runner: TaskRunner):
    @runner.task(max_attempts=5)
    async def build() -> None: ...

    job = await build.enqueue(max_attempts=2)

    assert job.max_attempts == 2


# ---- connection=: the caller's transaction -------------------------------------------


@pytest.fixture
async def caller_conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection of the caller's, set up by nothing of taskrunner's."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def test_a_job_enqueued_in_the_callers_transaction_exists_once_it_commits(
    runner: TaskRunner, caller_conn: asyncpg.Connection
):
    @runner.task
    async def send_email(to: str) -> None: ...

    async with caller_conn.transaction():
        job = await send_email.enqueue("a@b.c", connection=caller_conn)

    stored = await runner.get_job(job.id)
    assert stored is not None
    assert (stored.status, stored.args) == (JobStatus.QUEUED, ["a@b.c"])


async def test_a_job_enqueued_in_a_rolled_back_transaction_does_not_exist(
    runner: TaskRunner, caller_conn: asyncpg.Connection, count_jobs: Count
):
    @runner.task
    async def send_email(to: str) -> None: ...

    tx = caller_conn.transaction()
    await tx.start()
    job = await send_email.enqueue("a@b.c", connection=caller_conn)
    await tx.rollback()

    assert await runner.get_job(job.id) is None
    assert await count_jobs() == 0


async def test_a_job_in_an_uncommitted_transaction_is_invisible_to_others(
    runner: TaskRunner, caller_conn: asyncpg.Connection, count_jobs: Count, work: Work
):
    ran: list[str] = []

    @runner.task
    async def send_email(to: str) -> None:
        ran.append(to)

    async with caller_conn.transaction():
        job = await send_email.enqueue("a@b.c", connection=caller_conn)
        assert await runner.get_job(job.id) is None
        assert await count_jobs() == 0
        await work()  # a worker finds nothing to run yet
        assert ran == []

    assert await runner.get_job(job.id) is not None


async def test_enqueue_many_in_the_callers_transaction_is_undone_by_a_rollback(
    runner: TaskRunner, caller_conn: asyncpg.Connection, count_jobs: Count
):
    @runner.task
    async def send_email(to: str) -> None: ...

    tx = caller_conn.transaction()
    await tx.start()
    jobs = await runner.enqueue_many(
        send_email, [("a@b.c",), ("b@c.d",)], idempotency_keys=["k1", "k2"], connection=caller_conn
    )
    await tx.rollback()

    assert len(jobs) == 2
    assert await count_jobs() == 0


async def test_an_enqueue_on_the_callers_connection_deduplicates_against_committed_jobs(
    runner: TaskRunner, caller_conn: asyncpg.Connection
):
    @runner.task
    async def send_email(to: str) -> None: ...

    existing = await send_email.enqueue("a@b.c", idempotency_key="welcome")

    async with caller_conn.transaction():
        again = await send_email.enqueue("a@b.c", idempotency_key="welcome", connection=caller_conn)

    assert again.id == existing.id
    assert again.deduplicated
