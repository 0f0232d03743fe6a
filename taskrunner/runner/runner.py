"""TaskRunner: the registry of tasks, enqueueing, job lifecycle, and workers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

import asyncpg
import msgspec

from taskrunner.db import (
    CONNECT_WAIT,
    WORKER_COMMAND_TIMEOUT,
    WORKER_SESSION_SETTINGS,
    Migrator,
    ResolvedDsn,
    connect,
    create_pool,
    resolve_dsn,
    validate_schema,
)
from taskrunner.errors import (
    InvalidArguments,
    JobCancelled,
    JobFailed,
    JobNotFound,
    SchemaOutOfDate,
    TaskRunnerError,
    UnknownTask,
)
from taskrunner.jobs import FINAL_STATUSES, Job, JobStatus, Stats
from taskrunner.limits import (
    MAX_DELAY_SECONDS,
    MAX_TIMEOUT_SECONDS,
    check_int,
    check_job_id,
    check_seconds,
)
from taskrunner.queue import JobQueue, JobRow, NewJob
from taskrunner.queue.schedules import NewSchedule
from taskrunner.runner.batch_calls import split_call, takes_one_positional
from taskrunner.runner.by_name import UnregisteredTasks
from taskrunner.runner.codec import ArgumentsError, decode_json
from taskrunner.runner.context import current_request_id, new_request_id
from taskrunner.runner.metadata import MetadataVerbs
from taskrunner.runner.middleware import Middleware, MiddlewareVerbs
from taskrunner.runner.options import (
    Options,
    check_connection,
    check_key,
    check_keys,
    list_filters,
)
from taskrunner.runner.queues import QueueVerbs
from taskrunner.runner.results import typed_result
from taskrunner.runner.retry import Retry
from taskrunner.runner.schedules import ScheduleVerbs
from taskrunner.runner.sync import SyncRunner
from taskrunner.runner.tasks import ExecutorName, Task
from taskrunner.runner.worker import Worker, WorkerSettings

log = logging.getLogger("taskrunner")
DEFAULT_IDEMPOTENCY_TTL = 24 * 3600.0  # a new schema's (migration 0004)
POOL_CLOSE_TIMEOUT = 1.0  # a worker's pool, at the end of its shutdown

P = ParamSpec("P")
R = TypeVar("R")


class TaskRunner(ScheduleVerbs, MetadataVerbs, MiddlewareVerbs, QueueVerbs):
    """Tasks, enqueueing and workers over one PostgreSQL schema.

    The DSN is the first that is set of: `dsn`, $TASKRUNNER_DSN, $DATABASE_URL; without
    any, an embedded PostgreSQL is started with its data under ./.taskrunner/.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        schema: str = "taskrunner",
        auto_migrate: bool = True,
        idempotency_ttl: timedelta | float | None = None,
        pool_size: int = 10,
        statement_cache_size: int = 1024,
        strict_names: bool = True,
        listen_dsn: str | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        if dsn is not None and (not isinstance(dsn, str) or not dsn.strip()):
            raise InvalidArguments(
                None,
                f"dsn must be a non-empty string, not {dsn!r}; leave it out (None) to use "
                "$TASKRUNNER_DSN, $DATABASE_URL or else the embedded server",
                field="dsn",
            )
        self.dsn = dsn
        # Behind PgBouncer in transaction mode (statement_cache_size=0) workers LISTEN
        # here, a direct connection, or poll when it is not given.
        self.listen_dsn = listen_dsn
        self._init_middleware(middleware)  # around every attempt (runner/middleware.py)
        # False: enqueue("name", ...) of a task not registered here writes the job
        # unchecked (see enqueue_by_name).
        self.strict_names = strict_names
        self.schema = validate_schema(schema)
        self.auto_migrate = auto_migrate
        # The key lifetime is the schema's: given here, open() writes it there; not
        # given, the runner uses what the schema holds (24 hours unless set).
        self._explicit_ttl = idempotency_ttl is not None
        self.idempotency_ttl_seconds = check_seconds(
            idempotency_ttl if idempotency_ttl is not None else DEFAULT_IDEMPOTENCY_TTL,
            "idempotency_ttl",
            maximum=MAX_DELAY_SECONDS,
        )
        self.pool_size = check_int(pool_size, "pool_size", minimum=1)
        self.statement_cache_size = check_int(
            statement_cache_size, "statement_cache_size", minimum=0
        )
        self.tasks: dict[str, Task[..., Any]] = {}
        self.declared_schedules: dict[str, NewSchedule] = {}  # by @periodic
        self._unregistered = UnregisteredTasks(self)
        self._sync: SyncRunner | None = None
        self._target: ResolvedDsn | None = None
        self._pool: asyncpg.Pool | None = None
        self._queue: JobQueue | None = None

    # ---- tasks ---------------------------------------------------------------------

    @overload
    def task(self, func: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        lease: float = 30.0,
        executor: ExecutorName | None = None,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(  # type: ignore[misc]  # mypy misreads the keyword-only overload
        self,
        func: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        priority: int = 0,
        max_attempts: int | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        lease: float = 30.0,
        executor: ExecutorName | None = None,
    ) -> Any:
        """Register a function as a task: `@runner.task` or `@runner.task(name=..., ...)`."""
        options: dict[str, Any] = {
            "name": name,
            "queue": queue,
            "priority": priority,
            "max_attempts": max_attempts,
            "retry": retry,
            "timeout": timeout,
            "lease": lease,
            "executor": executor,
        }

        def register(f: Callable[P, R]) -> Task[P, R]:
            task = Task(f, self, **options)
            existing = self.tasks.get(task.name)
            if existing is not None and existing.func is not f:
                raise InvalidArguments(
                    None, f"a different task is already registered as {task.name!r}", field="name"
                )
            self.tasks[task.name] = task
            return task

        return register(func) if func is not None else register

    def _task_for(self, task: Task[..., Any] | str | Callable[..., Any]) -> Task[..., Any]:
        if isinstance(task, str) and not self.strict_names and task not in self.tasks:
            return self._unregistered.get(task)
        if self._unregistered.holds(task):
            return task  # type: ignore[return-value]  # holds() checked that it is a Task
        name = task if isinstance(task, str) else getattr(task, "name", None)
        if name is None:
            name = f"{getattr(task, '__module__', '?')}.{getattr(task, '__qualname__', task)}"
        found = self.tasks.get(name)
        if found is None:
            raise UnknownTask(name, list(self.tasks))
        return found

    # ---- connection ----------------------------------------------------------------

    @property
    def target(self) -> ResolvedDsn:
        """Where the runner connects (resolved when it opened)."""
        if self._target is None:
            raise _not_open()
        return self._target

    @property
    def job_queue(self) -> JobQueue:
        """The bare queue under this runner (open runners only)."""
        if self._queue is None:
            raise _not_open()
        return self._queue

    @property
    def is_open(self) -> bool:
        return self._queue is not None

    @property
    def sync(self) -> SyncRunner:
        """Blocking versions of the runner's verbs, for code without an event loop:
        `runner.sync.enqueue(task, ...)`, `.result(job_id)`, ... One pool, on a private
        loop in a background thread, serves every call; `runner.sync.close()` (or exit)
        ends it. Refused inside a running event loop."""
        if self._sync is None:
            self._sync = SyncRunner(self)
        return self._sync

    async def _resolve(self) -> ResolvedDsn:
        if self._target is None:
            target = await resolve_dsn(self.dsn)
            # No prepared-statement cache means a pooler in transaction mode.
            self._target = replace(target, behind_pooler=self.statement_cache_size == 0)
        return self._target

    async def open(self) -> None:
        """Connect, and migrate (auto_migrate) or check that the schema is up to date.
        While the server is unreachable it tries again for up to 10 seconds."""
        await self._open(wait=CONNECT_WAIT, for_worker=False)

    async def _open(self, *, wait: float | None, for_worker: bool) -> None:
        """Open with `wait` seconds of tries (None: until the server answers). A runner
        opened for its worker gives its pool the worker's timeouts; it migrates over a
        connection of its own, whose statements may take as long as they need."""
        if self._queue is not None:
            return
        target = await self._resolve()
        migrator = Migrator(self.schema)
        pool_options: dict[str, Any] = {}
        if for_worker:
            pool_options = {
                "server_settings": WORKER_SESSION_SETTINGS,
                "command_timeout": WORKER_COMMAND_TIMEOUT,
            }
            if self.auto_migrate:
                conn = await connect(target, wait=wait)
                try:
                    await migrator.migrate(conn)
                finally:
                    await conn.close()
        pool = await create_pool(
            target,
            max_size=self.pool_size,
            statement_cache_size=self.statement_cache_size,
            wait=wait,
            **pool_options,
        )
        try:
            async with pool.acquire() as conn:
                if self.auto_migrate:
                    await migrator.migrate(conn)  # nothing left, when a worker migrated above
                else:
                    pending = await migrator.pending(conn)
                    if pending:
                        raise SchemaOutOfDate(self.schema, pending)
            queue = JobQueue(pool, self.schema)
            await self._settle_idempotency_ttl(queue)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        self._queue = queue

    async def _settle_idempotency_ttl(self, queue: JobQueue) -> None:
        """Write the key lifetime given to this runner to the schema, or take the
        schema's."""
        if not self._explicit_ttl:
            self.idempotency_ttl_seconds = await queue.idempotency_ttl()
            return
        previous = await queue.set_idempotency_ttl(self.idempotency_ttl_seconds)
        if previous is not None:
            log.info(
                "idempotency_ttl of schema %s changed from %gs to %gs",
                self.schema,
                previous,
                self.idempotency_ttl_seconds,
            )

    async def close(self) -> None:
        pool, self._pool, self._queue = self._pool, None, None
        if pool is not None:
            await pool.close()

    async def _close_within(self, seconds: float) -> None:
        """Close, but drop the connections after `seconds` (the server may be gone)."""
        pool, self._pool, self._queue = self._pool, None, None
        if pool is None:
            return
        closing = asyncio.ensure_future(pool.close())
        await asyncio.wait({closing}, timeout=seconds)  # not wait_for: it waits for the cancel
        if not closing.done() or closing.exception() is not None:
            closing.cancel()
            pool.terminate()

    async def __aenter__(self) -> TaskRunner:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def migrate(self, dry_run: bool = False) -> list[str]:
        """Apply pending migrations (names returned); with `dry_run` only name them."""
        migrator = Migrator(self.schema)
        if self._pool is not None:
            async with self._pool.acquire() as conn:
                return await migrator.migrate(conn, dry_run=dry_run)
        conn = await connect(await self._resolve(), wait=CONNECT_WAIT)
        try:
            applied = await migrator.migrate(conn, dry_run=dry_run)
            if not dry_run and self._explicit_ttl:
                await self._settle_idempotency_ttl(JobQueue(conn, self.schema))
            return applied
        finally:
            await conn.close()

    # ---- enqueue -------------------------------------------------------------------

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
        result = await self.job_queue.enqueue(new, connection=connection)
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
        results = await self.job_queue.enqueue_many(new_jobs, connection=connection)
        if idempotency_keys is None or not any(idempotency_keys):
            return _jobs_of_one_insert([r.job for r in results])
        return [Job.from_row(r.job, deduplicated=r.deduplicated) for r in results]

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
        task = self.tasks.get(name) if isinstance(name, str) else None
        return await self.enqueue(task or self._unregistered.get(name), *args, **options)

    # ---- jobs ----------------------------------------------------------------------

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
        """Failed/cancelled → queued again, attempts reset."""
        return await self.job_queue.retry(check_job_id(job_id))

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
    ) -> list[Job]:
        """Newest jobs first, optionally of one status, queue, task (a Task or its name)
        and/or request id. Pages: `before_id=` the last id of the page before."""
        rows = await self.job_queue.list_jobs(
            **list_filters(status, queue, task, request_id, before_id, limit)
        )
        return [Job.from_row(r) for r in rows]

    # ---- workers -------------------------------------------------------------------

    async def run_worker(
        self,
        queues: Sequence[str] | str | None = None,
        concurrency: int = 10,
        stop_when_idle: bool = False,
        shutdown_timeout: float = 30.0,
        *,
        poll_interval: float = 1.0,
        rescue_interval: float = 2.0,
        process_pool_size: int | None = None,
        handle_signals: bool = True,
    ) -> None:
        """Run jobs of this runner's tasks until stopped (SIGINT/SIGTERM) or, with
        `stop_when_idle`, until nothing is running or runnable now."""
        check_int(concurrency, "concurrency", minimum=1)
        check_seconds(shutdown_timeout, "shutdown_timeout", maximum=MAX_TIMEOUT_SECONDS)
        for name, seconds in (
            ("poll_interval", poll_interval),
            ("rescue_interval", rescue_interval),
        ):
            check_seconds(seconds, name, maximum=MAX_TIMEOUT_SECONDS, positive=True)
        if process_pool_size is not None:
            check_int(process_pool_size, "process_pool_size", minimum=1)
        if isinstance(queues, str):
            queues = [q.strip() for q in queues.split(",") if q.strip()]
        opened_here = not self.is_open
        if opened_here:  # a worker waits for its database however long it takes to come
            await self._open(wait=None, for_worker=True)
        try:
            worker = Worker(
                self,
                WorkerSettings(
                    queues=tuple(queues) if queues else None,
                    concurrency=concurrency,
                    stop_when_idle=stop_when_idle,
                    shutdown_timeout=shutdown_timeout,
                    poll_interval=poll_interval,
                    rescue_interval=rescue_interval,
                    process_pool_size=process_pool_size,
                    handle_signals=handle_signals,
                ),
            )
            await worker.run()
        finally:
            if opened_here:
                await self._close_within(POOL_CLOSE_TIMEOUT)


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


def _not_open() -> TaskRunnerError:
    return TaskRunnerError(
        "the runner is not open: use `async with runner:` or `await runner.open()`"
    )
