"""TaskRunner: the registry of tasks, and workers; its other verbs live in parts of
their own, each a mixin class in a module named after what it does:

- runner/connection.py   open, close, migrate, `target`, `job_queue`
- runner/enqueueing.py   enqueue, enqueue_many, enqueue_by_name
- runner/job_verbs.py    get_job, wait, result, cancel/pause/resume/retry, stats, list_jobs
- runner/schedules.py    periodic, add_schedule and the other schedule verbs
- runner/metadata.py     set_metadata, get_metadata, delete_metadata
- runner/middleware.py   @runner.middleware
- runner/overview.py     overview, find_jobs, retry_jobs, cancel_jobs (the dashboard's)
- runner/workflows.py    enqueue_workflow and the other workflow verbs (canvas.py)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, overload

import asyncpg

from taskrunner.db import ResolvedDsn, validate_schema
from taskrunner.errors import InvalidArguments, UnknownTask
from taskrunner.limits import MAX_DELAY_SECONDS, MAX_TIMEOUT_SECONDS, check_int, check_seconds
from taskrunner.queue import JobQueue
from taskrunner.queue.schedules import NewSchedule
from taskrunner.runner.by_name import UnregisteredTasks
from taskrunner.runner.cleanup import CleanupVerbs, Retention
from taskrunner.runner.connection import (
    DEFAULT_IDEMPOTENCY_TTL,
    POOL_CLOSE_TIMEOUT,
    ConnectionVerbs,
)
from taskrunner.runner.enqueueing import EnqueueVerbs
from taskrunner.runner.instruments import check_metrics_installed, instruments_of, load_tracing
from taskrunner.runner.job_verbs import JobVerbs
from taskrunner.runner.metadata import MetadataVerbs
from taskrunner.runner.middleware import Middleware, MiddlewareVerbs
from taskrunner.runner.overview import OverviewVerbs
from taskrunner.runner.queues import QueueVerbs
from taskrunner.runner.retry import Retry
from taskrunner.runner.schedules import ScheduleVerbs
from taskrunner.runner.sync import SyncRunner
from taskrunner.runner.tasks import ExecutorName, Task
from taskrunner.runner.worker import Worker, WorkerSettings
from taskrunner.runner.workflows import WorkflowVerbs

P = ParamSpec("P")
R = TypeVar("R")


class TaskRunner(
    ConnectionVerbs,
    EnqueueVerbs,
    JobVerbs,
    ScheduleVerbs,
    MetadataVerbs,
    MiddlewareVerbs,
    CleanupVerbs,
    QueueVerbs,
    OverviewVerbs,
    WorkflowVerbs,
):
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
        retention: Retention | None = None,
        tracing: bool = False,
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
        # OpenTelemetry spans of enqueues and attempts (runner/tracing.py, imported only
        # when on); the instruments are None when there is none, which is all the hot
        # path checks (runner/instruments.py).
        self._tracing = load_tracing() if tracing else None
        self._instruments = instruments_of(self._tracing)
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
        # Built-in tasks that every worker of the runner runs, kept apart from `tasks`
        # (the application's own); see _registered.
        self.builtin_tasks: dict[str, Task[..., Any]] = {}
        # Retention of finished jobs is the schema's too (runner/cleanup.py); this also
        # adds the built-in task "taskrunner.cleanup".
        self._init_cleanup(retention)

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
        if isinstance(task, str) and not self.strict_names and self._registered(task) is None:
            return self._unregistered.get(task)
        if self._unregistered.holds(task):
            return task  # type: ignore[return-value]  # holds() checked that it is a Task
        name = task if isinstance(task, str) else getattr(task, "name", None)
        if name is None:
            name = f"{getattr(task, '__module__', '?')}.{getattr(task, '__qualname__', task)}"
        found = self._registered(name)
        if found is None:
            raise UnknownTask(name, list(self.tasks))
        return found

    def _registered(self, name: str) -> Task[..., Any] | None:
        """A task of this runner by name: one of its own, or a built-in one (such as
        "taskrunner.cleanup", runner/cleanup.py), which `tasks` does not list."""
        return self.tasks.get(name) or self.builtin_tasks.get(name)

    # ---- sync front ----------------------------------------------------------------

    @property
    def sync(self) -> SyncRunner:
        """Blocking versions of the runner's verbs, for code without an event loop:
        `runner.sync.enqueue(task, ...)`, `.result(job_id)`, ... One pool, on a private
        loop in a background thread, serves every call; `runner.sync.close()` (or exit)
        ends it. Refused inside a running event loop."""
        if self._sync is None:
            self._sync = SyncRunner(self)
        return self._sync

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
        metrics_port: int | None = None,
    ) -> None:
        """Run jobs of this runner's tasks until stopped (SIGINT/SIGTERM) or, with
        `stop_when_idle`, until nothing is running or runnable now. With `metrics_port`,
        serve Prometheus metrics there meanwhile (runner/metrics.py)."""
        check_int(concurrency, "concurrency", minimum=1)
        check_seconds(shutdown_timeout, "shutdown_timeout", maximum=MAX_TIMEOUT_SECONDS)
        for name, seconds in (
            ("poll_interval", poll_interval),
            ("rescue_interval", rescue_interval),
        ):
            check_seconds(seconds, name, maximum=MAX_TIMEOUT_SECONDS, positive=True)
        if process_pool_size is not None:
            check_int(process_pool_size, "process_pool_size", minimum=1)
        if metrics_port is not None:
            check_int(metrics_port, "metrics_port", minimum=1, maximum=65535)
            check_metrics_installed()
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
                    metrics_port=metrics_port,
                ),
            )
            await worker.run()
        finally:
            if opened_here:
                await self._close_within(POOL_CLOSE_TIMEOUT)
