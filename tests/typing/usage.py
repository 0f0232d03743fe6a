"""The public API as a user types it; `mypy --strict` must accept this file as it is.

Never run: tests/test_typing.py type-checks it. Each function states the types it
expects through its annotations, so a wrong type anywhere in the API shows as an error.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import tenacity

import taskrunner
from taskrunner import (
    IdempotencyConflict,
    InvalidArguments,
    Job,
    JobContext,
    JobStatus,
    Retry,
    Stats,
    Task,
    TaskRunner,
    TaskRunnerError,
    UnknownTask,
)

runner = TaskRunner(
    "postgresql://postgres@localhost/app",
    schema="myapp",
    auto_migrate=False,
    idempotency_ttl=timedelta(hours=1),
)


@runner.task
def add(a: int, b: int) -> int:
    return a + b


@runner.task
async def send_email(to: str, template: str = "welcome") -> None:
    context: JobContext | None = taskrunner.current_job()
    request_id: str | None = taskrunner.current_request_id()
    if context is not None and request_id is not None:
        await context.extend_lease(30.0)


@runner.task(
    name="reports.build",
    queue="reports",
    priority=0,
    max_attempts=5,
    retry=Retry(
        max_attempts=5,
        wait=tenacity.wait_exponential_jitter(initial=1, max=300),
        retry_on=(ConnectionError,),
        dont_retry_on=(ValueError,),
    ),
    timeout=300.0,
    lease=30.0,
    executor="process",
)
def build_report(report_id: int) -> dict[str, int]:
    if report_id < 0:
        raise taskrunner.PermanentFailure("no such report")
    if report_id == 0:
        raise taskrunner.RetryLater(timedelta(seconds=5))
    return {"report_id": report_id}


def direct_call_of_a_plain_task() -> int:
    return add(1, 2)


async def direct_call_of_an_async_task() -> None:
    await send_email("a@b.c", template="x")


def the_decorator_keeps_the_signature() -> Task[[int, int], int]:
    return add


async def enqueueing() -> list[Job]:
    first: Job = await runner.enqueue(
        send_email,
        "a@b.c",
        template="x",
        idempotency_key="welcome-a@b.c",
        request_id="req-1",
        delay=timedelta(minutes=5),
        priority=1,
        queue="mail",
        max_attempts=3,
    )
    second = await send_email.enqueue("a@b.c", run_at=datetime.now(UTC))
    third = await runner.enqueue("reports.build", 42, delay=1.5)
    many: list[Job] = await runner.enqueue_many(
        send_email, [("a@b.c",), {"to": "b@c.d"}], idempotency_keys=["k1", None]
    )
    return [first, second, third, *many]


def reading_a_job(job: Job) -> tuple[int, str, str, JobStatus, bool, str | None]:
    attempts: int = job.attempts + job.max_attempts + job.priority
    when: datetime = job.run_at if job.started_at is None else job.created_at
    finished: datetime | None = job.finished_at
    error: str | None = job.last_error
    _ = (attempts, when, finished, error, job.args, job.kwargs, job.result, job.request_id)
    return job.id, job.task, job.queue, job.status, job.deduplicated, job.idempotency_key


async def the_job_lifecycle(job_id: int) -> object:
    async with runner:
        found: Job | None = await runner.get_job(job_id)
        final: Job = await runner.wait(job_id, timeout=5.0)
        changed: bool = await runner.cancel(job_id)
        changed = changed or await runner.pause(job_id)
        changed = changed or await runner.resume(job_id)
        changed = changed or await runner.retry(job_id)
        stats: Stats = await runner.stats()
        value: object = await runner.result(job_id, timeout=1.0)
        return found, final, changed, stats, value, final.status is JobStatus.SUCCEEDED


async def request_ids() -> str | None:
    with taskrunner.request_context("req-42") as request_id:
        await send_email.enqueue(request_id)
    with taskrunner.request_context():
        return taskrunner.current_request_id()


async def connecting() -> list[str]:
    await runner.open()
    try:
        await runner.run_worker(queues=["default", "mail"], concurrency=4, stop_when_idle=True)
    finally:
        await runner.close()
    return await runner.migrate(dry_run=True)


async def errors() -> str:
    try:
        await runner.enqueue("missing")
    except UnknownTask as exc:
        return str(exc)
    except (InvalidArguments, IdempotencyConflict) as exc:
        return str(exc)
    except TaskRunnerError as exc:
        return str(exc)
    return ""


async def retention_and_cleanup() -> tuple[int, list[Job]]:
    keeping = TaskRunner(
        retention=taskrunner.Retention(
            succeeded=timedelta(hours=1), failed=None, cancelled=taskrunner.Retention.KEY_LIFETIME
        )
    )
    counts = await keeping.cleanup(
        succeeded="remove",
        failed=taskrunner.Cleanup("archive", older_than=timedelta(days=1)),
        running="rerun",
        older_than=timedelta(days=7),
    )
    archived: list[Job] = await keeping.list_jobs(archived=True)
    await keeping.cleanup_task.enqueue(succeeded="remove", older_than=7 * 86400.0)
    return counts["succeeded"], archived


async def queue_controls() -> list[taskrunner.QueueInfo]:
    await runner.configure_queue("reports", concurrency=2)
    limit = taskrunner.RateLimit(100, per=timedelta(seconds=1))
    await runner.configure_queue("emails", rate_limit=limit)
    paused: bool = await runner.pause_queue("reports")
    resumed: bool = await runner.resume_queue("reports")
    infos = await runner.queues()
    first: taskrunner.RateLimit | None = infos[0].rate_limit if infos else None
    counts: dict[str, int] = infos[0].counts if infos else {}
    assert paused or resumed or first is None or counts is not None
    return infos


async def testing_helpers() -> list[Job]:
    from taskrunner.testing import (
        assert_enqueued,
        assert_not_enqueued,
        enqueued_jobs,
        fresh_schema,
        run_until_idle,
    )

    async with fresh_schema(runner, dsn="postgresql://localhost/test") as fresh:
        await add.enqueue(1, 2)
        found: Job = await assert_enqueued(fresh, add, 1, b=2)
        await assert_not_enqueued(fresh, "tasks.add", 3, 4)
        listed: list[Job] = await enqueued_jobs(fresh, add, status="queued")
        ran: list[Job] = await run_until_idle(fresh, concurrency=2, timeout=10.0)
        return [found, *listed, *ran]
