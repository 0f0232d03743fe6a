"""`enqueue`, `enqueue_many` and `enqueue_by_name`: a call of a task, checked and written.

A part of TaskRunner kept apart. Options are checked by runner/options.py and the
arguments by the task's codec before anything is written, so a call that does not fit
raises InvalidArguments and leaves no row behind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

from taskrunner.errors import InvalidArguments
from taskrunner.jobs import Job
from taskrunner.queue import EnqueueResult, JobRow, NewJob
from taskrunner.runner.batch_calls import split_call, takes_one_positional
from taskrunner.runner.codec import ArgumentsError, decode_json
from taskrunner.runner.context import current_request_id, new_request_id
from taskrunner.runner.options import Options, check_connection, check_key, check_keys
from taskrunner.runner.tasks import Task

if TYPE_CHECKING:
    from taskrunner.queue import JobQueue
    from taskrunner.runner.by_name import UnregisteredTasks
    from taskrunner.runner.instruments import Instruments


class EnqueueVerbs:
    """The enqueue verbs of TaskRunner (a part of it, kept apart)."""

    if TYPE_CHECKING:
        tasks: dict[str, Task[..., Any]]
        _unregistered: UnregisteredTasks
        _instruments: Instruments | None  # tracing, metrics (runner/instruments.py)

        def _registered(self, name: str) -> Task[..., Any] | None: ...

        @property
        def job_queue(self) -> JobQueue: ...

        def _task_for(self, task: Task[..., Any] | str | Callable[..., Any]) -> Task[..., Any]: ...

    async def enqueue(
        self,
        task: Task[..., Any] | str,
        /,
        *args: Any,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        delay: float | timedelta | None = None,
        run_at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        max_attempts: int | None = None,
        connection: asyncpg.Connection | None = None,
        **kwargs: Any,
    ) -> Job:
        """Queue one call of `task`; returns the new job, or the existing one for a
        repeated idempotency key (`job.deduplicated`)."""
        found = self._task_for(task)
        options = Options.build(found, request_id, delay, run_at, priority, queue, max_attempts)
        if connection is not None:
            check_connection(connection, found.name)
        new = self._new_job(found, args, kwargs, idempotency_key, options, index=None)
        if self._instruments is None:
            result = await self.job_queue.enqueue(new, connection=connection)
        else:
            (result,) = await self._instruments.send([new], self._writer(connection))
        return Job.from_row(result.job, deduplicated=result.deduplicated)

    async def enqueue_many(
        self,
        task: Task[..., Any] | str,
        calls: Iterable[Any],
        /,
        *,
        idempotency_keys: Sequence[str | None] | None = None,
        request_id: str | None = None,
        delay: float | timedelta | None = None,
        run_at: datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        max_attempts: int | None = None,
        connection: asyncpg.Connection | None = None,
    ) -> list[Job]:
        """Queue many calls in one round trip, all or nothing. A call is a tuple of
        positional arguments, a dict of keyword arguments, or one positional argument (a
        list only for a task of one positional parameter; see runner/batch_calls.py)."""
        found = self._task_for(task)
        try:
            call_list = list(calls)
        except TypeError:
            raise InvalidArguments(
                found.name, f"calls must be an iterable, not {type(calls).__name__}", field="calls"
            ) from None
        idempotency_keys = check_keys(idempotency_keys, len(call_list), found.name)
        options = Options.build(found, request_id, delay, run_at, priority, queue, max_attempts)
        check_connection(connection, found.name)
        options.request_id = options.request_id or current_request_id() or new_request_id()
        new_jobs = []
        one_positional = takes_one_positional(found)
        for index, call in enumerate(call_list):
            args, kwargs = split_call(found, call, index, one_positional)
            key = idempotency_keys[index] if idempotency_keys is not None else None
            new_jobs.append(self._new_job(found, args, kwargs, key, options, index=index))
        if self._instruments is None:
            results = await self.job_queue.enqueue_many(new_jobs, connection=connection)
        elif new_jobs:
            results = await self._instruments.send(new_jobs, self._writer(connection))
        else:
            results = []
        if idempotency_keys is None or not any(idempotency_keys):
            return _jobs_of_one_insert([r.job for r in results])
        return [Job.from_row(r.job, deduplicated=r.deduplicated) for r in results]

    def _writer(
        self, connection: asyncpg.Connection | None
    ) -> Callable[[list[NewJob]], Awaitable[list[EnqueueResult]]]:
        async def write(jobs: list[NewJob]) -> list[EnqueueResult]:
            return await self.job_queue.enqueue_many(jobs, connection=connection)

        return write

    def _new_job(
        self,
        task: Task[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        idempotency_key: str | None,
        options: Options,
        *,
        index: int | None,
    ) -> NewJob:
        try:
            call = task.codec.encode(args, kwargs, fingerprint=idempotency_key is not None)
        except ArgumentsError as exc:
            raise InvalidArguments(task.name, str(exc), index=index) from None
        if idempotency_key is not None:
            check_key(idempotency_key, task.name, index)
        return NewJob(
            task=task.name,
            args=call.args,
            kwargs=call.kwargs,
            queue=options.queue,
            priority=options.priority,
            run_at=options.run_at,
            delay=options.delay,
            max_attempts=options.max_attempts,
            idempotency_key=idempotency_key,
            fingerprint=call.fingerprint or None,
            request_id=options.request_id or current_request_id() or new_request_id(),
        )

    async def enqueue_by_name(self, name: str, /, *args: Any, **options: Any) -> Job:
        """Queue a call of the task named `name`, registered here or not. A registered
        task is checked as by `enqueue`; for another the arguments are only JSON-encoded,
        and the worker that runs the task checks them (a job whose arguments do not fit
        fails without retries). Takes the same options as `enqueue`."""
        task = self._registered(name) if isinstance(name, str) else None
        return await self.enqueue(task or self._unregistered.get(name), *args, **options)


def _jobs_of_one_insert(rows: list[JobRow]) -> list[Job]:
    """Jobs of a keyless batch: one statement wrote them with the same options, so they
    differ only in id and arguments, and each is a copy of the first with those changed."""
    if not rows:
        return []
    first = Job.from_row(rows[0])
    replace, decode = msgspec.structs.replace, decode_json
    return [first] + [
        replace(
            first,
            id=row.id,
            args=decode(row.args),
            kwargs={} if row.kwargs == b"{}" else decode(row.kwargs),
        )
        for row in rows[1:]
    ]
