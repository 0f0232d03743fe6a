"""Request ids and the running job, carried by ContextVars into every executor."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

import msgspec

from taskrunner.limits import MAX_LEASE_SECONDS, MAX_REQUEST_ID_LENGTH, check_seconds, check_text

_request_id: ContextVar[str | None] = ContextVar("taskrunner_request_id", default=None)
_current_job: ContextVar[JobContext | None] = ContextVar("taskrunner_current_job", default=None)


def new_request_id() -> str:
    """32 random hex digits (the shape of a uuid4's hex, at a fraction of the cost)."""
    return os.urandom(16).hex()


def current_request_id() -> str | None:
    """The request id of the current context: the enqueuing request's, or the running job's."""
    return _request_id.get()


@contextmanager
def request_context(request_id: str | None = None) -> Iterator[str]:
    """Jobs enqueued inside this block carry `request_id` (a new one when None)."""
    if request_id:  # checked once here, not by every enqueue inside the block
        check_text(request_id, "request_id", MAX_REQUEST_ID_LENGTH)
    rid = request_id or new_request_id()
    token = _request_id.set(rid)
    try:
        yield rid
    finally:
        _request_id.reset(token)


class LeaseExtension:
    """An extension already under way. Await it in async code; sync code may ignore it
    or call `wait()`."""

    def __init__(self, future: Future[None]) -> None:
        self._future = future

    def wait(self, timeout: float | None = None) -> None:
        self._future.result(timeout)

    def __await__(self) -> Generator[Any, None, None]:
        import asyncio

        return asyncio.wrap_future(self._future).__await__()


def _no_extender(_job_id: int, _seconds: float) -> Future[None]:
    future: Future[None] = Future()
    future.set_exception(RuntimeError("this job context cannot extend its lease"))
    return future


class JobContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a handler may know about the job it runs: `taskrunner.current_job()`.

    A msgspec Struct rather than a dataclass: one is built per job on the worker's hot
    path, and a Struct is built several times faster than a frozen dataclass."""

    job_id: int
    task: str
    queue: str
    attempt: int
    max_attempts: int
    request_id: str | None
    _extend: Callable[[int, float], Future[None]] = _no_extender

    def __repr__(self) -> str:
        return (
            f"JobContext(job_id={self.job_id!r}, task={self.task!r}, queue={self.queue!r}, "
            f"attempt={self.attempt!r}, max_attempts={self.max_attempts!r}, "
            f"request_id={self.request_id!r})"
        )

    def extend_lease(self, seconds: float) -> LeaseExtension:
        """Hold the job `seconds` from now (and renew by that length from then on)."""
        # Checked here, before the lease keeper keeps it: a length no row can hold would
        # fail every later renewal of this worker, for all of its jobs.
        checked = check_seconds(
            seconds, "extend_lease seconds", maximum=MAX_LEASE_SECONDS, positive=True
        )
        return LeaseExtension(self._extend(self.job_id, checked))


def current_job() -> JobContext | None:
    """The job this code runs for, or None outside a handler."""
    return _current_job.get()


JobTokens = tuple[Token[JobContext | None], Token[str | None]]


def enter_job(ctx: JobContext) -> JobTokens:
    """Make `ctx` the current job and its request id the current one, until `leave_job`.
    (The worker's hot path; elsewhere `running_job` reads better.)"""
    return _current_job.set(ctx), _request_id.set(ctx.request_id)


def leave_job(tokens: JobTokens) -> None:
    _request_id.reset(tokens[1])
    _current_job.reset(tokens[0])


@contextmanager
def running_job(ctx: JobContext) -> Iterator[None]:
    """Make `ctx` the current job and its request id the current one."""
    tokens = enter_job(ctx)
    try:
        yield
    finally:
        leave_job(tokens)
