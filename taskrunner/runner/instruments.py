"""Hooks around every enqueue and every attempt, for tracing and metrics.

Both are optional and off by default, so their code lives in modules of their own
(runner/tracing.py, runner/metrics.py), imported only when turned on. What the hot path
sees is one object chosen at start: with no instrument the runner keeps None and each
enqueue pays one None check; a worker binds its attempt call once, so with none its
attempts pay nothing at all.

Why not middleware (runner/middleware.py)? Middleware sees an attempt's result decoded
and encodes it again, and it knows only the JobContext, not the job's row (its trace
context, its run_at). An instrument sees the row and passes the encoded result through.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from taskrunner.errors import InvalidArguments
from taskrunner.queue import EnqueueResult, JobRow, NewJob
from taskrunner.runner.context import JobContext

if TYPE_CHECKING:
    from taskrunner.runner.tasks import Task
    from taskrunner.runner.tracing import Tracing

Write: TypeAlias = Callable[[list[NewJob]], Awaitable[list[EnqueueResult]]]
Run: TypeAlias = Callable[["Task[..., Any]", JobRow, JobContext], Awaitable[bytes]]


class Instrument(Protocol):
    async def send(self, jobs: list[NewJob], write: Write) -> list[EnqueueResult]:
        """Write `jobs` (one enqueue call, one task and queue) through `write`."""
        ...

    async def attempt(self, run: Run, task: Task[..., Any], job: JobRow, ctx: JobContext) -> bytes:
        """Run one attempt through `run`."""
        ...


class Instruments:
    """The instruments of a runner, the first outermost."""

    def __init__(self, instruments: Sequence[Instrument]) -> None:
        self.instruments = tuple(instruments)

    async def send(self, jobs: list[NewJob], write: Write) -> list[EnqueueResult]:
        for instrument in reversed(self.instruments):
            write = functools.partial(instrument.send, write=write)
        return await write(jobs)

    def around(self, run: Run) -> Run:
        """`run` inside every instrument's `attempt`: bound once, per worker."""
        for instrument in reversed(self.instruments):
            run = functools.partial(instrument.attempt, run)
        return run


def instruments_of(*instruments: Instrument | None) -> Instruments | None:
    """None when there is none: what the hot path checks."""
    present = [i for i in instruments if i is not None]
    return Instruments(present) if present else None


def load_tracing() -> Tracing:
    """The tracing instrument; a clear error without the `otel` extra."""
    try:
        from taskrunner.runner.tracing import Tracing
    except ImportError as exc:
        raise InvalidArguments(
            None,
            f"tracing=True needs OpenTelemetry ({exc}): pip install 'taskrunner[otel]'",
            field="tracing",
        ) from None
    return Tracing()


def check_metrics_installed() -> None:
    """A clear error without the `prometheus` extra, before the worker starts."""
    try:
        import prometheus_client  # noqa: F401 - only whether it is there
    except ImportError as exc:
        raise InvalidArguments(
            None,
            f"metrics_port needs prometheus_client ({exc}): pip install "
            "'taskrunner[prometheus]'",
            field="metrics_port",
        ) from None
