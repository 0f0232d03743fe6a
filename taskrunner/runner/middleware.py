"""Middleware: code of the application's around every attempt, in all three executors.

A middleware is `async def mw(job: JobContext, call_next) -> Any`; the first registered
is the outermost. It runs on the worker's event loop around the dispatch to the
handler's executor. What it returns is the attempt's result; what it raises is the
attempt's failure, retried like any other (`RetryLater` and `PermanentFailure`
included). A middleware that never calls `call_next` skips the handler; one that calls
it twice gets a `TaskRunnerError` (the handler would otherwise run twice).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

from taskrunner.errors import InvalidArguments, TaskRunnerError
from taskrunner.runner.context import JobContext

CallNext: TypeAlias = Callable[[], Awaitable[Any]]
Middleware: TypeAlias = Callable[[JobContext, CallNext], Awaitable[Any]]


def check_middleware(middleware: object) -> Middleware:
    """Refuse at registration what could only fail at every attempt."""
    call = getattr(middleware, "__call__", None)  # noqa: B004 - an async __call__ counts
    if not (inspect.iscoroutinefunction(middleware) or inspect.iscoroutinefunction(call)):
        raise InvalidArguments(
            None,
            f"a middleware must be an async function taking (job, call_next), not "
            f"{middleware!r}",
            field="middleware",
        )
    return middleware  # type: ignore[return-value]


async def run_through(
    middleware: Sequence[Middleware], job: JobContext, handler: CallNext
) -> Any:
    """Run `handler` inside every middleware, the first outermost."""

    async def layer(index: int) -> Any:
        if index == len(middleware):
            return await handler()
        called = False

        async def call_next() -> Any:
            nonlocal called
            if called:
                raise TaskRunnerError(
                    f"middleware {middleware[index]!r} called call_next twice; "
                    "a handler runs once per attempt"
                )
            called = True
            return await layer(index + 1)

        return await middleware[index](job, call_next)

    return await layer(0)


class LogAttempts:
    """A ready middleware: one log line per attempt with its outcome and duration, and
    the job's ids as `extra` fields (for structured logs); a warning for attempts slower
    than `slow_after` seconds.

    `TaskRunner(middleware=[LogAttempts()])`."""

    def __init__(
        self,
        logger: logging.Logger | str = "taskrunner.attempts",
        *,
        level: int = logging.INFO,
        slow_after: float | None = None,
    ) -> None:
        self.log = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.level = level
        self.slow_after = slow_after

    def __repr__(self) -> str:
        return f"LogAttempts(logger={self.log.name!r}, slow_after={self.slow_after!r})"

    async def __call__(self, job: JobContext, call_next: CallNext) -> Any:
        started = time.perf_counter()
        outcome = "succeeded"
        try:
            return await call_next()
        except BaseException as exc:
            outcome = f"failed ({type(exc).__name__})"
            raise
        finally:
            took = time.perf_counter() - started
            slow = self.slow_after is not None and took > self.slow_after
            self.log.log(
                logging.WARNING if slow else self.level,
                "job %s %s attempt %d of %d %s in %.3fs%s",
                job.job_id,
                job.task,
                job.attempt,
                job.max_attempts,
                outcome,
                took,
                " (slow)" if slow else "",
                extra={
                    "job_id": job.job_id,
                    "task": job.task,
                    "queue": job.queue,
                    "attempt": job.attempt,
                    "request_id": job.request_id,
                    "outcome": outcome,
                    "duration": took,
                },
            )


class MiddlewareVerbs:
    """`@runner.middleware` and the runner's list (a part of TaskRunner, kept apart)."""

    _middleware: list[Middleware]

    def _init_middleware(self, middleware: object) -> None:
        if isinstance(middleware, str | bytes) or not isinstance(middleware, Sequence):
            raise InvalidArguments(
                None, "middleware must be a list of middleware", field="middleware"
            )
        self._middleware = [check_middleware(m) for m in middleware]

    def middleware(self, func: Middleware) -> Middleware:
        """Register `func` around every attempt (after, so inside, those before it)."""
        self._middleware.append(check_middleware(func))
        return func

    @property
    def middlewares(self) -> tuple[Middleware, ...]:
        """The registered middleware, outermost first."""
        return tuple(self._middleware)
