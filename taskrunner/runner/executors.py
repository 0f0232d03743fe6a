"""Where a handler runs: on the event loop, in a thread, or in a child process.

All three make `current_job()` and the job's request id visible to the handler, enforce
the task's timeout, and return the result already encoded as JSON.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from taskrunner.queue import JobRow
from taskrunner.runner.codec import decode_json, encode_result
from taskrunner.runner.context import JobContext, enter_job, leave_job, running_job
from taskrunner.runner.middleware import Middleware, run_through
from taskrunner.runner.process_pool import JobTimeout, ProcessPool
from taskrunner.runner.tasks import Task

log = logging.getLogger("taskrunner")


class Executors:
    """The three executors of one worker, created on first use."""

    def __init__(
        self,
        concurrency: int,
        on_extend: Callable[[int, float], Future[None]],
        process_pool_size: int | None = None,
        middleware: Sequence[Middleware] = (),
        fence_of: Callable[[int], float] = lambda _job_id: math.inf,
        trace_carrier: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self._trace_carrier = trace_carrier  # tracing on: the span context, for children
        self._middleware = tuple(middleware)
        self._fence_of = fence_of
        self._concurrency = concurrency
        self._on_extend = on_extend
        self._process_pool_size = process_pool_size or min(concurrency, os.cpu_count() or 1)
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessPool | None = None

    async def prestart_processes(self) -> None:
        """Start the process pool ahead of the first process task."""
        await self._process_pool().prestart()

    def _process_pool(self) -> ProcessPool:
        if self._processes is None:
            self._processes = ProcessPool(
                self._process_pool_size, self._on_extend, self._fence_of, self._trace_carrier
            )
        return self._processes

    def move_fence(self, job_id: int, at: float) -> None:
        """A lease was renewed: a process handler's child may run until `at`."""
        if self._processes is not None:
            self._processes.move_fence(job_id, at)

    async def run(self, task: Task[..., Any], job: JobRow, ctx: JobContext) -> bytes:
        """The attempt's result, encoded; through the middleware when there is any (the
        handler's result reaches it decoded, as JSON carries it)."""
        if not self._middleware:
            return await self._dispatch(task, job, ctx)

        async def call_next() -> Any:
            return decode_json(await self._dispatch(task, job, ctx))

        tokens = enter_job(ctx)  # current_job() and the request id inside middleware too
        try:
            return encode_result(await run_through(self._middleware, ctx, call_next))
        finally:
            leave_job(tokens)

    async def _dispatch(self, task: Task[..., Any], job: JobRow, ctx: JobContext) -> bytes:
        if task.executor == "process":
            pool = self._process_pool()
            return await pool.run(task, job.args, job.kwargs, ctx, task.timeout)
        args, kwargs = task.codec.decode(job.args, job.kwargs)
        if task.executor == "async":
            return await self._run_async(task, args, kwargs, ctx)
        return await self._run_thread(task, args, kwargs, ctx)

    @staticmethod
    async def _run_async(
        task: Task[..., Any], args: list[Any], kwargs: dict[str, Any], ctx: JobContext
    ) -> bytes:
        tokens = enter_job(ctx)
        try:
            if task.timeout is None:
                return encode_result(await task.func(*args, **kwargs))
            deadline = asyncio.timeout(task.timeout)
            try:
                async with deadline:
                    value = await task.func(*args, **kwargs)
            except TimeoutError:
                if not deadline.expired():
                    raise  # the handler's own TimeoutError, not ours
                raise JobTimeout(f"attempt ran past its timeout of {task.timeout:g}s") from None
        finally:
            leave_job(tokens)
        return encode_result(value)

    async def _run_thread(
        self, task: Task[..., Any], args: list[Any], kwargs: dict[str, Any], ctx: JobContext
    ) -> bytes:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(
                self._concurrency, thread_name_prefix="taskrunner-handler"
            )

        started: list[float] = []  # when the thread took the call (time.monotonic())

        def call() -> bytes:
            started.append(time.monotonic())
            with running_job(ctx):
                value = task.func(*args, **kwargs)
                if asyncio.iscoroutine(value):
                    value = asyncio.run(value)
                return encode_result(value)

        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._threads, contextvars.copy_context().run, call)
        try:
            if await _wait_from_start(future, started, task.timeout):
                return future.result()
            # A thread cannot be stopped. Its attempt fails, but only once the thread has
            # returned, so the job never runs twice at the same time; the lease stays held.
            log.warning(
                "job %s ran past its timeout of %gs; a thread cannot be interrupted, so "
                "the attempt fails when the thread returns",
                ctx.job_id,
                task.timeout,
                extra=_log_extra(ctx),
            )
            await asyncio.wait({future})
        except asyncio.CancelledError:
            return await _outlive(future, ctx)
        raise JobTimeout(
            f"attempt ran past its timeout of {task.timeout:g}s (the thread was waited for, "
            "since threads cannot be interrupted)"
        )

    async def close(self) -> None:
        if self._processes is not None:
            await self._processes.close()
        if self._threads is not None:
            self._threads.shutdown(wait=False)


def _log_extra(ctx: JobContext) -> dict[str, Any]:
    return {"job_id": ctx.job_id, "task": ctx.task, "request_id": ctx.request_id}


async def _wait_from_start(
    future: asyncio.Future[bytes], started: list[float], timeout: float | None
) -> bool:
    """Wait for the thread's call; whether it returned within `timeout` of its start
    (not of its submission: a call may wait for a free thread first)."""
    if timeout is None:
        await asyncio.wait({future})
        return True
    done, _ = await asyncio.wait({future}, timeout=timeout)
    while not done:
        if started:
            left = started[0] + timeout - time.monotonic()
            if left <= 0:
                return False
        else:
            left = timeout  # not started yet: its timeout has not begun
        done, _ = await asyncio.wait({future}, timeout=left)
    return True


async def _outlive(future: asyncio.Future[bytes], ctx: JobContext) -> bytes:
    """The worker stopped this attempt (a cancel, a lost lease), but a thread cannot be
    interrupted: the attempt ends, with what really happened, when its thread returns.
    Until then the job keeps its slot and stays running, so it never runs twice at once
    here. A second cancellation (the event loop closing) is not waited out."""
    task = asyncio.current_task()
    if not future.done():
        log.warning(
            "job %s: its thread cannot be interrupted; the attempt ends when it returns",
            ctx.job_id,
            extra=_log_extra(ctx),
        )
        await asyncio.wait({future})
    if task is not None:
        task.uncancel()
    return future.result()
