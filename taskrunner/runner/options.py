"""Enqueue options, checked once per call with the task's defaults filled in.

Every check raises InvalidArguments naming the option, before anything is written. An
option left out takes the task's value, which was checked when the task was declared,
so the common call pays for none of these checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from taskrunner.errors import InvalidArguments
from taskrunner.jobs import JobStatus
from taskrunner.limits import (
    INT32_MAX,
    MAX_DELAY_SECONDS,
    MAX_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_REQUEST_ID_LENGTH,
    check_int,
    check_job_id,
    check_run_at,
    check_seconds,
    check_text,
)
from taskrunner.runner.tasks import Task

MAX_LIST_LIMIT = 10_000  # jobs in one page of list_jobs
_CONNECTIONS = (asyncpg.Connection, asyncpg.pool.PoolConnectionProxy)


class Options:
    """Enqueue options of one call (or one batch)."""

    __slots__ = ("delay", "max_attempts", "priority", "queue", "request_id", "run_at")

    def __init__(
        self,
        request_id: str | None,
        delay: float,
        run_at: datetime | None,
        priority: int,
        queue: str,
        max_attempts: int,
    ) -> None:
        self.request_id = request_id
        self.delay = delay
        self.run_at = run_at
        self.priority = priority
        self.queue = queue
        self.max_attempts = max_attempts

    @classmethod
    def build(
        cls,
        task: Task[..., Any],
        request_id: str | None,
        delay: float | timedelta | None,
        run_at: datetime | None,
        priority: int | None,
        queue: str | None,
        max_attempts: int | None,
    ) -> Options:
        name = task.name
        if delay is not None and run_at is not None:
            raise InvalidArguments(name, "give delay or run_at, not both", field="delay")
        seconds = (
            check_seconds(delay, "delay", maximum=MAX_DELAY_SECONDS, task=name)
            if delay is not None
            else 0.0
        )
        if run_at is not None:
            check_run_at(run_at, task=name)
        # An empty request id means none (a new one, or the context's), as before.
        if request_id is not None and (request_id or not isinstance(request_id, str)):
            check_text(request_id, "request_id", MAX_REQUEST_ID_LENGTH, task=name)
        return cls(
            request_id,
            seconds,
            run_at,
            check_int(priority, "priority", task=name) if priority is not None else task.priority,
            check_text(queue, "queue", MAX_NAME_LENGTH, task=name)
            if queue is not None
            else task.queue,
            check_int(max_attempts, "max_attempts", minimum=1, maximum=INT32_MAX, task=name)
            if max_attempts is not None
            else task.max_attempts,
        )


def check_key(key: Any, task: str, index: int | None) -> str:
    """An idempotency key: a non-empty string PostgreSQL can store and index."""
    return check_text(key, "idempotency_key", MAX_KEY_LENGTH, task=task, index=index)


def check_keys(keys: Any, calls: int, task: str) -> Sequence[str | None] | None:
    """enqueue_many's idempotency_keys: None, or one key (or None) per call."""
    if keys is None:
        return None
    if isinstance(keys, str | bytes) or not isinstance(keys, Sequence):
        raise InvalidArguments(
            task,
            f"idempotency_keys must be a list of keys, not {type(keys).__name__}",
            field="idempotency_keys",
        )
    if len(keys) != calls:
        raise InvalidArguments(
            task,
            f"idempotency_keys has {len(keys)} keys for {calls} calls",
            field="idempotency_keys",
        )
    return keys


def check_connection(connection: Any, task: str | None) -> None:
    """The caller's connection: an asyncpg connection (or a pool's proxy of one)."""
    if connection is not None and not isinstance(connection, _CONNECTIONS):
        raise InvalidArguments(
            task,
            f"connection must be an asyncpg connection, not {type(connection).__name__}",
            field="connection",
        )


def list_filters(
    status: Any, queue: Any, task: Any, request_id: Any, before_id: Any, limit: Any
) -> dict[str, Any]:
    """list_jobs' filters, checked: a known status, storable strings, ids and a limit."""
    if status is not None:
        try:
            status = JobStatus(status).value
        except ValueError:
            raise InvalidArguments(
                None,
                f"status must be one of {', '.join(s.value for s in JobStatus)}, not {status!r}",
                field="status",
            ) from None
    if isinstance(task, Task):
        task = task.name
    for field, value, length in (
        ("queue", queue, MAX_NAME_LENGTH),
        ("task", task, MAX_NAME_LENGTH),
        ("request_id", request_id, MAX_REQUEST_ID_LENGTH),
    ):
        if value is not None:
            check_text(value, field, length)
    return {
        "status": status,
        "queue": queue,
        "task": task,
        "request_id": request_id,
        "before_id": check_job_id(before_id, "before_id") if before_id is not None else None,
        "limit": check_int(limit, "limit", minimum=0, maximum=MAX_LIST_LIMIT),
    }
