"""A pool of child processes that can be killed one at a time.

concurrent.futures' ProcessPoolExecutor breaks as a whole when one child is killed, so a
hard timeout there would fail every running job. Here each child has its own pipe: a
child that runs past its timeout is killed and replaced, and a child that crashes fails
only the attempt it was running.

Each child also fences itself: it knows its job's fence time (runner/fencing.py), which
the parent moves with every renewal through shared memory, and a watchdog thread kills
the child once that time has passed. A child keeps running while only its parent is
frozen (SIGSTOP), when no parent can kill it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from taskrunner.errors import TaskRunnerError
from taskrunner.runner.context import JobContext, running_job

WATCH_TICK = 0.05  # how often a child compares its job's fence time with the clock


class JobTimeout(TaskRunnerError, TimeoutError):
    """An attempt ran past its task's timeout."""


class ChildProcessDied(TaskRunnerError):
    """The process running the attempt died (killed, crashed or out of memory)."""


class RemoteError(TaskRunnerError):
    """An exception from a child process that could not be sent back as itself."""

    def __init__(self, type_name: str, message: str, remote_traceback: str) -> None:
        self.type_name = type_name
        self.remote_traceback = remote_traceback
        super().__init__(f"{type_name}: {message}")


class _Child:
    def __init__(self, ctx: Any) -> None:
        self.conn, child_end = ctx.Pipe(duplex=True)
        # The running job's fence time (time.monotonic(), one clock for the machine's
        # processes); infinite while idle. Written by the parent, read by the child.
        self.fence: Any = ctx.Value("d", math.inf, lock=False)
        self.process = ctx.Process(target=_child_main, args=(child_end, self.fence), daemon=True)
        self.process.start()
        child_end.close()
        self.used = False  # has run user code (imported and called a task)

    def kill(self) -> None:
        """Kill at once (a signal, never blocking); the waiting thread then sees EOF."""
        with contextlib.suppress(Exception):
            self.process.kill()

    def reap(self) -> None:
        self.process.join(5)
        self.conn.close()

    def wait_reply(
        self, timeout: float | None, on_extend: Callable[[float], object]
    ) -> tuple[Any, ...]:
        """Block (in a helper thread) until the child answers, dies or times out."""
        loop_deadline = None if timeout is None else _now() + timeout
        while True:
            remaining = None if loop_deadline is None else max(0.0, loop_deadline - _now())
            try:
                if not self.conn.poll(remaining):
                    return ("timeout",)
                message = self.conn.recv()
            except (EOFError, OSError):
                self.process.join(1)
                return ("died", self.process.exitcode)
            if message[0] == "extend":
                on_extend(message[1])
                continue
            return tuple(message)


def _now() -> float:
    import time

    return time.monotonic()


class ProcessPool:
    """Up to `size` long-lived children, started on demand (spawn: safe beside threads)."""

    def __init__(
        self,
        size: int,
        on_extend: Callable[[int, float], Future[None]],
        fence_of: Callable[[int], float] = lambda _job_id: math.inf,
        trace_carrier: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.size = max(1, size)
        # Tracing on: the attempt's span context goes to the child (runner/tracing.py).
        self._trace_carrier = trace_carrier
        self._mp = multiprocessing.get_context("spawn")
        self._on_extend = on_extend
        self._fence_of = fence_of
        self._running: dict[int, _Child] = {}
        self._idle: list[_Child] = []
        self._slots = asyncio.Semaphore(self.size)
        self._waiters = ThreadPoolExecutor(self.size, thread_name_prefix="taskrunner-process-wait")

    async def run(
        self, task: Any, args: bytes, kwargs: bytes, ctx: JobContext, timeout: float | None
    ) -> bytes:
        loop = asyncio.get_running_loop()
        async with self._slots:
            child = (
                self._idle.pop()
                if self._idle
                # not on the waiter threads: they may all be blocked on running children
                else await loop.run_in_executor(None, _Child, self._mp)
            )
            ctx_fields = {
                "job_id": ctx.job_id,
                "task": ctx.task,
                "queue": ctx.queue,
                "attempt": ctx.attempt,
                "max_attempts": ctx.max_attempts,
                "request_id": ctx.request_id,
            }
            carrier = self._trace_carrier() if self._trace_carrier is not None else None
            healthy = False
            child.fence.value = self._fence_of(ctx.job_id)
            self._running[ctx.job_id] = child
            try:
                child.used = True
                child.conn.send(
                    (
                        task.func.__module__,
                        task.func.__qualname__,
                        args,
                        kwargs,
                        ctx_fields,
                        carrier,
                    )
                )
                reply = await loop.run_in_executor(
                    self._waiters,
                    child.wait_reply,
                    timeout,
                    lambda seconds: self._on_extend(ctx.job_id, seconds),
                )
                healthy = reply[0] in ("ok", "error")
            finally:
                child.fence.value = math.inf
                if self._running.get(ctx.job_id) is child:
                    del self._running[ctx.job_id]
                if healthy:
                    self._idle.append(child)
                else:  # timed out, died, or we were cancelled mid-run: never reuse it
                    child.kill()
                    await asyncio.shield(loop.run_in_executor(None, child.reap))
        kind = reply[0]
        if kind == "ok":
            result: bytes = reply[1]
            return result
        if kind == "timeout":
            raise JobTimeout(
                f"attempt ran past its timeout of {timeout:g}s; its process was killed"
            )
        if kind == "died":
            raise ChildProcessDied(f"the process running the job died (exit code {reply[1]})")
        pickled, type_name, message, remote_tb = reply[1:]
        if pickled is not None:
            try:
                error = pickle.loads(pickled)
            except Exception:
                error = None
            if isinstance(error, BaseException):
                raise error
        raise RemoteError(type_name, message, remote_tb)

    def move_fence(self, job_id: int, at: float) -> None:
        """The job's lease was renewed: its child may run until `at` (any thread)."""
        child = self._running.get(job_id)
        if child is not None:
            child.fence.value = at

    async def prestart(self) -> None:
        """Start every child now, so the first jobs do not pay for process start-up."""
        loop = asyncio.get_running_loop()
        missing = self.size - len(self._idle)
        children = await asyncio.gather(
            *(loop.run_in_executor(None, _Child, self._mp) for _ in range(max(0, missing)))
        )
        self._idle.extend(children)

    async def close(self) -> None:
        """A child that ran user code sees its pipe close and exits on its own (its atexit
        hooks run); one that never did is killed, so a short-lived worker does not wait
        for children still starting up. They are waited for together."""
        loop = asyncio.get_running_loop()
        children, self._idle = self._idle, []
        for child in children:
            if child.used:
                with contextlib.suppress(Exception):
                    child.conn.close()
            else:
                child.kill()
        await asyncio.gather(*(loop.run_in_executor(None, _stop_child, c) for c in children))
        self._waiters.shutdown(wait=False, cancel_futures=True)


def _stop_child(child: _Child) -> None:
    child.process.join(5)
    if child.process.is_alive():
        child.kill()
    child.reap()


def _watch(fence: Any) -> None:
    """The child's own fence: die once the running job's fence time has passed (its
    parent, frozen or cut off, did not renew the lease in time)."""
    while True:
        time.sleep(WATCH_TICK)
        if time.monotonic() >= fence.value:
            os.kill(os.getpid(), signal.SIGKILL)


def _child_main(conn: multiprocessing.connection.Connection, fence: Any) -> None:
    """Run requests until the parent closes the pipe."""
    from taskrunner.runner.codec import encode_result
    from taskrunner.runner.tasks import _import_task

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_watch, args=(fence,), name="taskrunner-fence", daemon=True).start()

    def extend(_job_id: int, seconds: float) -> Future[None]:
        conn.send(("extend", seconds))
        done: Future[None] = Future()
        done.set_result(None)
        return done

    while True:
        try:
            module, qualname, args, kwargs, ctx_fields, carrier = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        try:
            task = _import_task(module, qualname)
            positional, keywords = task.codec.decode(args, kwargs)
            with contextlib.ExitStack() as scope:
                if carrier is not None:  # tracing is on (imported only then)
                    from taskrunner.runner.tracing import attached

                    scope.enter_context(attached(carrier))
                scope.enter_context(running_job(JobContext(**ctx_fields, _extend=extend)))
                value = task.func(*positional, **keywords)
                if asyncio.iscoroutine(value):
                    value = asyncio.run(value)
            conn.send(("ok", encode_result(value)))
        except BaseException as exc:
            try:
                pickled: bytes | None = pickle.dumps(exc)
            except Exception:
                pickled = None
            conn.send(("error", pickled, type(exc).__name__, str(exc), traceback.format_exc()))
