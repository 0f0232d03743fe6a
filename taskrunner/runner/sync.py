"""`runner.sync`: a blocking front for code without an event loop (scripts, Django,
Flask, a REPL).

Every call runs the runner's coroutine on a private event loop in a background thread
and waits for it, so one connection pool serves all calls of the process. The front
opens on its first call and closes with `close()`, at the end of a `with` block, or at
interpreter exit. Called from inside a running event loop it refuses (it would block
that loop): there, await the runner's coroutines instead.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import copy
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from taskrunner.errors import TaskRunnerError

if TYPE_CHECKING:
    from taskrunner.jobs import Job, JobStatus, Stats
    from taskrunner.runner.canvas import Canvas
    from taskrunner.runner.runner import TaskRunner
    from taskrunner.runner.tasks import Task
    from taskrunner.runner.workflows import Workflow

log = logging.getLogger("taskrunner")
T = TypeVar("T")
CLOSE_TIMEOUT = 10.0  # seconds close() waits for the pool and the thread

_open_fronts: weakref.WeakSet[SyncRunner] = weakref.WeakSet()
_exit_hook_lock = threading.Lock()
_exit_hook_installed = False


class SyncRunner:
    """The runner's verbs as blocking calls; see the module docstring."""

    def __init__(self, runner: TaskRunner) -> None:
        self._source = runner
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: TaskRunner | None = None  # the source's twin, open on our loop

    # ---- lifecycle -----------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._runner is not None

    def open(self) -> None:
        """Start the loop thread and open the pool (the first call does it anyway)."""
        _refuse_inside_a_loop("open")
        self._ensure_open()

    def close(self) -> None:
        """Close the pool and stop the loop thread; a later call opens them again."""
        with self._lock:
            loop, thread, runner = self._loop, self._thread, self._runner
            self._loop = self._thread = self._runner = None
            _open_fronts.discard(self)
        if loop is None:
            return
        if runner is not None:
            closing = asyncio.run_coroutine_threadsafe(_close_runner(runner), loop)
            try:
                closing.result(CLOSE_TIMEOUT)
            except Exception as exc:  # closing must not raise at exit
                log.debug("runner.sync: closing the pool failed: %s", exc)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(CLOSE_TIMEOUT)
            if thread.is_alive():
                log.warning("runner.sync: the loop thread did not stop in time")
                return
        loop.close()

    def __enter__(self) -> SyncRunner:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _ensure_open(self) -> tuple[asyncio.AbstractEventLoop, TaskRunner]:
        with self._lock:
            if self._loop is not None and self._runner is not None:
                return self._loop, self._runner
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="taskrunner-sync", daemon=True)
            thread.start()
            runner = _twin(self._source)
            try:
                asyncio.run_coroutine_threadsafe(runner.open(), loop).result()
            except BaseException:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(CLOSE_TIMEOUT)
                if not thread.is_alive():
                    loop.close()
                raise
            self._loop, self._thread, self._runner = loop, thread, runner
            _open_fronts.add(self)
        _install_exit_hook()
        return loop, runner

    def _call(self, verb: str, make: Callable[[TaskRunner], Awaitable[T]]) -> T:
        _refuse_inside_a_loop(verb)
        loop, runner = self._ensure_open()
        future = asyncio.run_coroutine_threadsafe(_awaited(make(runner)), loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise TaskRunnerError(f"runner.sync.{verb}() was cancelled: the front closed") from None
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt while waiting: stop the coroutine too
            raise

    # ---- enqueue -------------------------------------------------------------------

    def enqueue(self, task: Task[..., Any] | str, /, *args: Any, **options: Any) -> Job:
        """`runner.enqueue`, blocking (the same arguments and options, but no
        `connection=`: a connection belongs to the loop that made it)."""
        _refuse_connection(options)
        return self._call("enqueue", lambda r: r.enqueue(task, *args, **options))

    def enqueue_by_name(self, name: str, /, *args: Any, **options: Any) -> Job:
        _refuse_connection(options)
        return self._call("enqueue_by_name", lambda r: r.enqueue_by_name(name, *args, **options))

    def enqueue_many(
        self, task: Task[..., Any] | str, calls: Iterable[Any], /, **options: Any
    ) -> list[Job]:
        _refuse_connection(options)
        batch = list(calls)
        return self._call("enqueue_many", lambda r: r.enqueue_many(task, batch, **options))

    # ---- jobs ----------------------------------------------------------------------

    def get_job(self, job_id: int) -> Job | None:
        return self._call("get_job", lambda r: r.get_job(job_id))

    def wait(self, job_id: int, timeout: float | None = None) -> Job:
        return self._call("wait", lambda r: r.wait(job_id, timeout))

    def result(self, job_id: int, timeout: float | None = None) -> Any:
        return self._call("result", lambda r: r.result(job_id, timeout))

    def cancel(self, job_id: int) -> bool:
        return self._call("cancel", lambda r: r.cancel(job_id))

    def pause(self, job_id: int) -> bool:
        return self._call("pause", lambda r: r.pause(job_id))

    def resume(self, job_id: int) -> bool:
        return self._call("resume", lambda r: r.resume(job_id))

    def retry(self, job_id: int) -> bool:
        return self._call("retry", lambda r: r.retry(job_id))

    def stats(self) -> Stats:
        return self._call("stats", lambda r: r.stats())

    def list_jobs(
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
        return self._call(
            "list_jobs",
            lambda r: r.list_jobs(
                status=status,
                queue=queue,
                task=task,
                request_id=request_id,
                before_id=before_id,
                limit=limit,
                archived=archived,
            ),
        )

    # ---- workflows -----------------------------------------------------------------

    def enqueue_workflow(self, canvas: Canvas, **options: Any) -> Workflow:
        """`runner.enqueue_workflow`, blocking (no `connection=`, as for enqueue)."""
        _refuse_connection(options)
        return self._call("enqueue_workflow", lambda r: r.enqueue_workflow(canvas, **options))

    def get_workflow(self, workflow_id: int) -> Workflow | None:
        return self._call("get_workflow", lambda r: r.get_workflow(workflow_id))

    def wait_workflow(self, workflow_id: int, timeout: float | None = None) -> Workflow:
        return self._call("wait_workflow", lambda r: r.wait_workflow(workflow_id, timeout))

    def workflow_result(self, workflow_id: int, timeout: float | None = None) -> Any:
        return self._call("workflow_result", lambda r: r.workflow_result(workflow_id, timeout))

    def cancel_workflow(self, workflow_id: int) -> int:
        return self._call("cancel_workflow", lambda r: r.cancel_workflow(workflow_id))

    def retry_workflow(self, workflow_id: int) -> int:
        return self._call("retry_workflow", lambda r: r.retry_workflow(workflow_id))

    def migrate(self, dry_run: bool = False) -> list[str]:
        return self._call("migrate", lambda r: r.migrate(dry_run=dry_run))


def _twin(source: TaskRunner) -> TaskRunner:
    """A runner like `source` (same settings, the same task registry) with a pool of its
    own, so the source stays free for use on the caller's own loops."""
    twin = copy.copy(source)
    twin._pool = None
    twin._queue = None
    return twin


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _close_runner(runner: TaskRunner) -> None:
    pool = runner._pool
    try:
        await asyncio.wait_for(runner.close(), CLOSE_TIMEOUT / 2)
    except TimeoutError:
        if pool is not None:
            pool.terminate()


def _refuse_inside_a_loop(verb: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise TaskRunnerError(
        f"runner.sync.{verb}() was called inside a running event loop, which it would "
        f"block; in async code use `await runner.{verb}(...)` instead"
    )


def _refuse_connection(options: dict[str, Any]) -> None:
    if options.get("connection") is not None:
        raise TaskRunnerError(
            "runner.sync cannot enqueue on your connection (it belongs to another event "
            "loop); use `await runner.enqueue(..., connection=conn)` in async code"
        )


def _install_exit_hook() -> None:
    global _exit_hook_installed
    with _exit_hook_lock:
        if not _exit_hook_installed:
            # Registered after the first pool opened, so it runs before the exit hooks of
            # what that opening started (such as the embedded server's).
            atexit.register(_close_all)
            _exit_hook_installed = True


def _close_all() -> None:
    for front in list(_open_fronts):
        front.close()
