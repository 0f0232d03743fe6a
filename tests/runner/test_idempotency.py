"""Idempotency keys: scope (task, key), dedupe in every status, conflicts, retention after
a job finishes, and exactly one job under concurrent enqueues (coroutines and processes)."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from taskrunner import (
    IdempotencyConflict,
    Job,
    JobStatus,
    PermanentFailure,
    Task,
    TaskRunner,
)

Count = Callable[[], Awaitable[int]]
Work = Callable[..., Awaitable[None]]


def build_task(runner: TaskRunner, runs: list[int] | None = None) -> Task[..., int]:
    """A task that returns report_id * 10, or fails for good when asked to."""

    @runner.task(name="reports.build")
    async def build(report_id: int, fail: bool = False) -> int:
        if runs is not None:
            runs.append(report_id)
        if fail:
            raise PermanentFailure("asked to fail")
        return report_id * 10

    return build


# Every status a keyed job can be in: `waiting` belongs to workflow steps, whose key is
# the workflow's (tests/runner/test_workflows.py covers it).
KEYED_STATUSES = [status for status in JobStatus if status is not JobStatus.WAITING]


async def put_job_in(
    status: JobStatus, runner: TaskRunner, work: Work, task: Task[..., int], key: str
) -> Job:
    """Enqueue build(1) under `key` and bring the job to `status`."""
    job = await task.enqueue(1, fail=status is JobStatus.FAILED, idempotency_key=key)
    if status is JobStatus.RUNNING:
        await runner.job_queue.claim([task.name], limit=1, owner="a-worker-elsewhere")
    elif status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        await work()
    elif status is JobStatus.CANCELLED:
        assert await runner.cancel(job.id)
    elif status is JobStatus.PAUSED:
        assert await runner.pause(job.id)
    current = await runner.get_job(job.id)
    assert current is not None
    assert current.status is status
    return current


# ---- scope ---------------------------------------------------------------------------


async def test_one_key_on_two_different_tasks_gives_two_jobs(runner: TaskRunner, count_jobs: Count):
    @runner.task
    async def send_email(to: str) -> None: ...

    @runner.task
    async def send_sms(to: str) -> None: ...

    email = await send_email.enqueue("a@b.c", idempotency_key="welcome-1")
    sms = await send_sms.enqueue("+4912345", idempotency_key="welcome-1")

    assert email.id != sms.id
    assert (email.deduplicated, sms.deduplicated) == (False, False)
    assert await count_jobs() == 2


async def test_without_a_key_identical_calls_give_separate_jobs(
    runner: TaskRunner, count_jobs: Count
):
    build = build_task(runner)

    first = await build.enqueue(1)
    second = await build.enqueue(1)

    assert first.id != second.id
    assert not second.deduplicated
    assert await count_jobs() == 2


async def test_the_job_keeps_its_idempotency_key(runner: TaskRunner):
    build = build_task(runner)

    job = await build.enqueue(1, idempotency_key="report-1")

    assert job.idempotency_key == "report-1"


async def test_an_empty_idempotency_key_raises_value_error(runner: TaskRunner, count_jobs: Count):
    build = build_task(runner)

    with pytest.raises(ValueError, match="idempotency_key"):
        await build.enqueue(1, idempotency_key="")
    assert await count_jobs() == 0


# ---- same key, same arguments: the existing job --------------------------------------


async def test_same_key_and_arguments_return_the_existing_job_deduplicated(
    runner: TaskRunner, count_jobs: Count
):
    build = build_task(runner)

    first = await build.enqueue(1, idempotency_key="report-1")
    again = await build.enqueue(1, idempotency_key="report-1")

    assert again.id == first.id
    assert (first.deduplicated, again.deduplicated) == (False, True)
    assert await count_jobs() == 1


async def test_the_same_call_spelled_differently_counts_as_the_same_arguments(
    runner: TaskRunner, count_jobs: Count
):
    build = build_task(runner)

    first = await build.enqueue(1, idempotency_key="report-1")
    again = await runner.enqueue(
        "reports.build", report_id=1, fail=False, idempotency_key="report-1"
    )

    assert again.id == first.id
    assert again.deduplicated
    assert await count_jobs() == 1


@pytest.mark.parametrize("status", KEYED_STATUSES, ids=str)
async def test_same_key_and_arguments_return_the_existing_job_in_every_status(
    runner: TaskRunner, work: Work, count_jobs: Count, status: JobStatus
):
    build = build_task(runner)
    existing = await put_job_in(status, runner, work, build, "report-1")

    again = await build.enqueue(1, fail=status is JobStatus.FAILED, idempotency_key="report-1")

    assert again.id == existing.id
    assert again.deduplicated is True
    assert again.status is status
    assert await count_jobs() == 1


async def test_a_deduplicated_enqueue_of_a_finished_job_runs_nothing_again(
    runner: TaskRunner, work: Work
):
    runs: list[int] = []
    build = build_task(runner, runs)
    await build.enqueue(1, idempotency_key="report-1")
    await work()

    again = await build.enqueue(1, idempotency_key="report-1")
    await work()

    assert again.deduplicated
    assert runs == [1]


# ---- same key, different arguments: a conflict ---------------------------------------


@pytest.mark.parametrize("status", KEYED_STATUSES, ids=str)
async def test_same_key_with_other_arguments_raises_conflict_in_every_status(
    runner: TaskRunner, work: Work, status: JobStatus
):
    build = build_task(runner)
    existing = await put_job_in(status, runner, work, build, "report-1")

    with pytest.raises(IdempotencyConflict) as raised:
        await build.enqueue(2, idempotency_key="report-1")

    assert raised.value.existing_job_id == existing.id
    assert (raised.value.task, raised.value.idempotency_key) == ("reports.build", "report-1")


async def test_a_conflict_writes_nothing_and_leaves_the_holder_unchanged(
    runner: TaskRunner, count_jobs: Count
):
    build = build_task(runner)
    holder = await build.enqueue(1, idempotency_key="report-1")

    with pytest.raises(IdempotencyConflict):
        await build.enqueue(2, idempotency_key="report-1")

    assert await count_jobs() == 1
    assert await runner.get_job(holder.id) == holder


# ---- retention after the job finished ------------------------------------------------


async def test_a_finished_job_keeps_its_key_and_result_within_the_ttl(
    runner: TaskRunner, work: Work
):
    build = build_task(runner)
    await build.enqueue(4, idempotency_key="report-4")
    await work()

    again = await build.enqueue(4, idempotency_key="report-4")

    assert again.deduplicated
    assert (again.status, again.result) == (JobStatus.SUCCEEDED, 40)


@pytest.mark.parametrize(
    ("finished_ago", "deduplicated"),
    [(timedelta(hours=23), True), (timedelta(hours=25), False)],
    ids=["23h-ago-kept", "25h-ago-free"],
)
async def test_the_default_ttl_keeps_a_finished_jobs_key_for_24_hours(
    runner: TaskRunner, finished_ago: timedelta, deduplicated: bool
):
    build = build_task(runner)
    job = await build.enqueue(1, idempotency_key="report-1")
    await runner.cancel(job.id)
    await runner.job_queue.db.execute(
        f'UPDATE "{runner.schema}".jobs SET finished_at = now() - $2::interval WHERE id = $1',
        job.id,
        finished_ago,
    )

    again = await build.enqueue(1, idempotency_key="report-1")

    assert again.deduplicated is deduplicated
    assert (again.id == job.id) is deduplicated


async def test_after_the_ttl_the_key_is_free_for_a_new_job(
    pg_dsn: str, bare_schema: str, count_rows: Callable[[TaskRunner], Awaitable[int]]
):
    async with TaskRunner(pg_dsn, schema=bare_schema, idempotency_ttl=0.2) as runner:
        build = build_task(runner)
        old = await build.enqueue(1, idempotency_key="report-1")
        await runner.cancel(old.id)
        await asyncio.sleep(0.3)

        new = await build.enqueue(1, idempotency_key="report-1")

        assert new.id != old.id
        assert (new.deduplicated, new.status) == (False, JobStatus.QUEUED)
        assert await count_rows(runner) == 2


async def test_after_the_ttl_other_arguments_no_longer_conflict(pg_dsn: str, bare_schema: str):
    async with TaskRunner(
        pg_dsn, schema=bare_schema, idempotency_ttl=timedelta(seconds=0.2)
    ) as runner:
        build = build_task(runner)
        old = await build.enqueue(1, idempotency_key="report-1")
        await runner.cancel(old.id)
        await asyncio.sleep(0.3)

        new = await build.enqueue(2, idempotency_key="report-1")

        assert (new.id != old.id, new.args) == (True, [2])


async def test_a_job_whose_key_expired_keeps_its_result(
    pg_dsn: str, bare_schema: str, run_until_idle: Callable[[TaskRunner], Awaitable[None]]
):
    async with TaskRunner(pg_dsn, schema=bare_schema, idempotency_ttl=0.2) as runner:
        build = build_task(runner)
        old = await build.enqueue(3, idempotency_key="report-3")
        await run_until_idle(runner)
        await asyncio.sleep(0.3)
        await build.enqueue(3, idempotency_key="report-3")

        kept = await runner.get_job(old.id)

        assert kept is not None
        assert (kept.status, kept.result) == (JobStatus.SUCCEEDED, 30)


async def test_an_unfinished_job_holds_its_key_however_small_the_ttl(pg_dsn: str, bare_schema: str):
    async with TaskRunner(pg_dsn, schema=bare_schema, idempotency_ttl=0) as runner:
        build = build_task(runner)
        first = await build.enqueue(1, idempotency_key="report-1")
        await asyncio.sleep(0.1)

        again = await build.enqueue(1, idempotency_key="report-1")

        assert again.id == first.id
        assert again.deduplicated


# ---- concurrency ---------------------------------------------------------------------


async def test_concurrent_enqueues_with_one_key_make_one_job_and_all_get_its_id(
    runner: TaskRunner, count_jobs: Count
):
    build = build_task(runner)

    jobs = await asyncio.gather(*(build.enqueue(1, idempotency_key="report-1") for _ in range(30)))

    assert len({j.id for j in jobs}) == 1
    assert sum(not j.deduplicated for j in jobs) == 1
    assert await count_jobs() == 1


KEYS = 20
ENQUEUE_SCRIPT = textwrap.dedent(
    """
    import asyncio
    import os
    import sys

    from taskrunner import TaskRunner

    cache = 0 if os.environ.get("TASKRUNNER_TEST_POOLER") == "1" else 1024  # PgBouncer run
    runner = TaskRunner(
        sys.argv[1], schema=sys.argv[2], auto_migrate=False, statement_cache_size=cache
    )
    KEYS = int(sys.argv[3])


    @runner.task(name="reports.build")
    async def build(report_id: int, fail: bool = False) -> int:
        return report_id * 10


    async def main() -> None:
        async with runner:
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            for n in range(KEYS):  # every process races on every key, in lockstep
                job = await runner.enqueue("reports.build", n, idempotency_key=f"report-{n}")
                print(n, job.id, job.deduplicated, flush=True)


    asyncio.run(main())
    """
)


@pytest.mark.slow
async def test_enqueues_racing_from_several_processes_make_one_job_per_key_and_all_get_its_id(
    runner: TaskRunner, count_jobs: Count, tmp_path: Path
):
    build_task(runner)  # the schema is migrated by the open runner
    script = tmp_path / "enqueue_once.py"
    script.write_text(ENQUEUE_SCRIPT)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(script), runner.target.dsn, runner.schema, str(KEYS),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]  # fmt: skip
    try:
        for proc in procs:  # every process connected before any enqueues
            assert proc.stdout is not None
            assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ready\n"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 30)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    assert [p.returncode for p in procs] == [0] * 4, [err.decode() for _, err in outputs]
    seen: dict[str, list[tuple[str, str]]] = {}
    for out, _ in outputs:
        for line in out.decode().splitlines():
            key, job_id, deduplicated = line.split()
            seen.setdefault(key, []).append((job_id, deduplicated))
    assert len(seen) == KEYS
    for key, answers in seen.items():
        assert len({job_id for job_id, _ in answers}) == 1, key
        assert sorted(d for _, d in answers) == ["False", "True", "True", "True"], key
    assert await count_jobs() == KEYS


# ---- the schema's key lifetime -------------------------------------------------------


async def test_a_runner_given_a_key_lifetime_writes_it_to_the_schema_for_every_process(
    pg_dsn: str, bare_schema: str
):
    async with TaskRunner(pg_dsn, schema=bare_schema, idempotency_ttl=timedelta(minutes=5)):
        pass

    async with TaskRunner(pg_dsn, schema=bare_schema) as other:
        assert other.idempotency_ttl_seconds == 300
        assert await other.job_queue.idempotency_ttl() == 300


async def test_a_runner_without_a_key_lifetime_frees_keys_by_the_schemas_not_its_default(
    pg_dsn: str, bare_schema: str
):
    async with TaskRunner(pg_dsn, schema=bare_schema, idempotency_ttl=0.2):
        pass
    async with TaskRunner(pg_dsn, schema=bare_schema) as runner:  # default would be 24 h
        build = build_task(runner)
        old = await build.enqueue(1, idempotency_key="report-1")
        await runner.cancel(old.id)
        await asyncio.sleep(0.3)

        new = await build.enqueue(1, idempotency_key="report-1")

        assert (new.deduplicated, new.id != old.id) == (False, True)
