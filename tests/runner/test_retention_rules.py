"""Retention: kept per final status by the schema's rule, applied by running workers,
keyed jobs kept while their key lives; and the built-in cleanup task."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from worker_helpers import background_worker, eventually, run_until_idle

from taskrunner import (
    InvalidArguments,
    JobStatus,
    PermanentFailure,
    Retention,
    TaskRunner,
)

# ---- the rule and where it lives ----------------------------------------------------


def test_the_default_keeps_succeeded_and_cancelled_jobs_for_the_key_lifetime_failed_7_days():
    retention = Retention()

    assert retention.succeeded is Retention.KEY_LIFETIME
    assert retention.cancelled is Retention.KEY_LIFETIME
    assert retention.failed == timedelta(days=7)


@pytest.mark.parametrize("value", [timedelta(seconds=-1), 3600, "1h", timedelta(days=365 * 200)])
def test_a_retention_that_is_not_a_timedelta_none_or_the_key_lifetime_is_refused(value: object):
    with pytest.raises(InvalidArguments, match=r"Retention\.failed"):
        Retention(failed=value)  # type: ignore[arg-type]


async def test_an_explicit_retention_is_written_to_the_schema_and_read_by_any_runner(
    pg_dsn: str, schema: str
):
    chosen = Retention(succeeded=timedelta(hours=1), failed=None, cancelled=timedelta(0))
    async with TaskRunner(pg_dsn, schema=schema, retention=chosen):
        pass

    async with TaskRunner(pg_dsn, schema=schema) as other:
        assert other.retention == chosen


async def test_a_runner_without_retention_uses_the_stored_one_and_changes_nothing(
    pg_dsn: str, schema: str
):
    async with TaskRunner(pg_dsn, schema=schema) as runner:
        assert runner.retention == Retention()


async def test_when_two_runners_disagree_the_one_opened_last_wins_and_the_change_is_logged(
    pg_dsn: str, schema: str, caplog: pytest.LogCaptureFixture
):
    first = Retention(failed=timedelta(days=1))
    second = Retention(failed=timedelta(days=30))
    async with TaskRunner(pg_dsn, schema=schema, retention=first):
        with caplog.at_level(logging.INFO, logger="taskrunner"):
            async with TaskRunner(pg_dsn, schema=schema, retention=second):
                pass

    async with TaskRunner(pg_dsn, schema=schema) as reader:
        assert reader.retention == second
    assert any("retention of schema" in r.getMessage() for r in caplog.records)


# ---- applied by workers -------------------------------------------------------------


async def test_a_running_worker_prunes_each_final_status_by_its_own_retention(
    pg_dsn: str, schema: str
):
    retention = Retention(succeeded=timedelta(0), failed=None, cancelled=timedelta(0))
    async with TaskRunner(pg_dsn, schema=schema, retention=retention) as runner:

        @runner.task(name="ok")
        async def ok() -> None: ...

        @runner.task(name="bad")
        async def bad() -> None:
            raise PermanentFailure("no")

        done, failed = await ok.enqueue(), await bad.enqueue()
        cancelled = await ok.enqueue(delay=3600)
        await runner.cancel(cancelled.id)

        async with background_worker(runner, prune_interval=0.1, rescue_interval=0.1):

            async def pruned() -> bool:
                return (
                    await runner.get_job(done.id) is None
                    and await runner.get_job(cancelled.id) is None
                )

            await eventually(pruned, timeout=15, message="succeeded and cancelled pruned")
            job = await runner.get_job(failed.id)
            assert job is not None
            assert job.status is JobStatus.FAILED  # None: kept until a cleanup


async def test_a_keyed_job_is_kept_while_its_key_lives_whatever_its_retention(
    pg_dsn: str, schema: str
):
    retention = Retention(succeeded=timedelta(0))
    async with TaskRunner(pg_dsn, schema=schema, retention=retention) as runner:

        @runner.task(name="ok")
        async def ok(n: int) -> None: ...

        keyed = await ok.enqueue(1, idempotency_key="charge-1")
        plain = await ok.enqueue(2)
        async with background_worker(runner, prune_interval=0.1, rescue_interval=0.1):

            async def plain_pruned() -> bool:
                return await runner.get_job(plain.id) is None

            await eventually(plain_pruned, timeout=15, message="the keyless job pruned")
            again = await ok.enqueue(1, idempotency_key="charge-1")

        assert again.deduplicated
        assert again.id == keyed.id


async def test_a_keyed_job_goes_once_its_key_expired(pg_dsn: str, schema: str):
    retention = Retention(succeeded=timedelta(0))
    async with TaskRunner(
        pg_dsn, schema=schema, retention=retention, idempotency_ttl=timedelta(seconds=1)
    ) as runner:

        @runner.task(name="ok")
        async def ok(n: int) -> None: ...

        keyed = await ok.enqueue(1, idempotency_key="charge-1")
        async with background_worker(runner, prune_interval=0.1, rescue_interval=0.1):

            async def pruned() -> bool:
                return await runner.get_job(keyed.id) is None

            await eventually(pruned, timeout=15, message="the keyed job pruned")


# ---- the built-in task --------------------------------------------------------------


async def test_every_runner_has_the_cleanup_task_named_taskrunner_cleanup(runner: TaskRunner):
    assert runner.cleanup_task.name == "taskrunner.cleanup"
    assert "taskrunner.cleanup" not in runner.tasks  # the application's tasks only
    job = await runner.enqueue("taskrunner.cleanup", succeeded="remove")
    assert job.task == "taskrunner.cleanup"


async def test_the_cleanup_task_run_by_a_worker_cleans_up_and_returns_its_counts(
    pg_dsn: str, schema: str
):
    async with TaskRunner(pg_dsn, schema=schema) as runner:

        @runner.task(name="ok")
        async def ok() -> None: ...

        old = await ok.enqueue()
        await run_until_idle(runner)
        job = await runner.cleanup_task.enqueue(succeeded="remove", older_than=0)
        await run_until_idle(runner)

        counts = await runner.result(job.id, timeout=10)
        assert counts["succeeded"] == 1
        assert await runner.get_job(old.id) is None
        assert (await runner.get_job(job.id)).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]


async def test_a_schedule_of_the_cleanup_task_runs_it(pg_dsn: str, schema: str):
    async with TaskRunner(pg_dsn, schema=schema) as runner:

        @runner.task(name="ok")
        async def ok() -> None: ...

        old = await ok.enqueue()
        await run_until_idle(runner)
        await runner.add_schedule(
            "weekly-cleanup",
            runner.cleanup_task,
            cron="0 4 * * 0",
            kwargs={"succeeded": "archive", "older_than": 0},
        )
        job = await runner.run_schedule_now("weekly-cleanup")
        await run_until_idle(runner)

        assert (await runner.result(job.id, timeout=10))["succeeded"] == 1
        assert [j.id for j in await runner.list_jobs(archived=True)] == [old.id]


@pytest.mark.parametrize(
    "options",
    [{"running": "archive"}, {"succeeded": "delete"}, {"older_than": "7d"}, {"done": "remove"}],
)
async def test_the_cleanup_task_refuses_a_bad_action_when_enqueued(
    runner: TaskRunner, options: dict[str, object], count_jobs
):
    with pytest.raises(InvalidArguments):
        await runner.cleanup_task.enqueue(**options)

    assert await count_jobs() == 0
