"""A cancel asked while a job runs, that comes too late to stop its handler: what really
happened wins. A handler that returned leaves the job succeeded with its result; one that
failed leaves it cancelled (never retried), its last_error saying how it failed."""

from __future__ import annotations

from worker_helpers import run_until_idle

from taskrunner import JobStatus, TaskRunner, current_job


async def ask_cancel_unnoticed(runner: TaskRunner) -> None:
    """Mark the running job's cancel as asked, without the notification that would
    interrupt the handler: the cancel reaches the worker only after the handler ends."""
    ctx = current_job()
    assert ctx is not None
    await runner.job_queue.db.execute(
        f'UPDATE "{runner.schema}".jobs SET cancel_requested = true WHERE id = $1', ctx.job_id
    )


async def test_a_job_that_returns_after_its_cancel_was_asked_stays_succeeded_with_its_result(
    tr: TaskRunner,
):
    @tr.task
    async def finishes_anyway() -> int:
        await ask_cancel_unnoticed(tr)
        return 42

    job = await finishes_anyway.enqueue()
    await run_until_idle(tr)

    done = await tr.get_job(job.id)
    assert done is not None
    assert (done.status, done.result) == (JobStatus.SUCCEEDED, 42)
    assert await tr.result(job.id) == 42
