"""The verbs on queued jobs by id: get, wait, result, cancel, pause, resume, retry, and
the read side (stats, list_jobs).

A part of TaskRunner kept apart. Job ids are checked (integers, bool excluded) before
any round trip, so `cancel(1.5)` raises rather than cancelling job 1.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from taskrunner.errors import JobCancelled, JobFailed, JobNotFound
from taskrunner.jobs import FINAL_STATUSES, Job, JobStatus, Stats
from taskrunner.limits import MAX_TIMEOUT_SECONDS, check_job_id, check_seconds
from taskrunner.runner.options import list_filters
from taskrunner.runner.results import typed_result
from taskrunner.runner.tasks import Task

if TYPE_CHECKING:
    from taskrunner.queue import JobQueue


class JobVerbs:
    """The job verbs of TaskRunner (a part of it, kept apart)."""

    if TYPE_CHECKING:
        tasks: dict[str, Task[..., Any]]

        @property
        def job_queue(self) -> JobQueue: ...

        async def _retry_step(self, workflow_id: int, job_id: int) -> bool: ...

    async def get_job(self, job_id: int) -> Job | None:
        row = await self.job_queue.get(check_job_id(job_id))
        return Job.from_row(row) if row is not None else None

    async def wait(self, job_id: int, timeout: float | None = None) -> Job:
        """Wait until the job is succeeded, failed or cancelled; TimeoutError after `timeout`."""
        check_job_id(job_id)
        if timeout is not None:
            check_seconds(timeout, "timeout", maximum=MAX_TIMEOUT_SECONDS)
        async with asyncio.timeout(timeout):
            delay = 0.01
            while True:
                job = await self.get_job(job_id)
                if job is None:
                    raise JobNotFound(job_id)
                if job.status in FINAL_STATUSES:
                    return job
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 0.25)

    async def result(self, job_id: int, timeout: float | None = None) -> Any:
        """The job's return value once it succeeded; JobFailed or JobCancelled otherwise.
        For a task registered here, the handler's return type decodes it (a datetime, a
        dataclass, a Struct ...); JobNotFound when no job has that id."""
        job = await self.wait(job_id, timeout)
        if job.status is JobStatus.FAILED:
            raise JobFailed(job.id, job.last_error, job)
        if job.status is JobStatus.CANCELLED:
            raise JobCancelled(job.id, job)
        task = self.tasks.get(job.task)
        return typed_result(task.func if task is not None else None, job.result)

    async def cancel(self, job_id: int) -> bool:
        """Queued/paused → cancelled; a running job's handler is cancelled by its worker."""
        return await self.job_queue.cancel(check_job_id(job_id))

    async def pause(self, job_id: int) -> bool:
        return await self.job_queue.pause(check_job_id(job_id))

    async def resume(self, job_id: int) -> bool:
        return await self.job_queue.resume(check_job_id(job_id))

    async def retry(self, job_id: int) -> bool:
        """Failed/cancelled → queued again, attempts reset. A workflow step goes back
        with the steps that were cancelled because of it (they wait for it again)."""
        if await self.job_queue.retry(check_job_id(job_id)):
            return True
        row = await self.job_queue.get(job_id)
        if row is None or row.workflow_id is None:
            return False
        return await self._retry_step(row.workflow_id, job_id)

    async def stats(self) -> Stats:
        return Stats.from_counts(await self.job_queue.stats())

    async def list_jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        queue: str | None = None,
        task: Task[..., Any] | str | None = None,
        request_id: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
        archived: bool = False,
    ) -> list[Job]:
        """Newest jobs first, optionally of one status, queue, task (a Task or its name)
        and/or request id. Pages: `before_id=` the last id of the page before. With
        `archived=True` it lists the archive (jobs a cleanup archived) instead."""
        rows = await self.job_queue.list_jobs(
            **list_filters(status, queue, task, request_id, before_id, limit),
            archived=bool(archived),
        )
        return [Job.from_row(r) for r in rows]
