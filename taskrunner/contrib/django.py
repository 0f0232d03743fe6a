"""Enqueue from Django on Django's own connection, so a job commits or rolls back with the
view's data: `enqueue("emails.welcome", user.id)` inside `transaction.atomic()`.

It calls the schema's SQL interface (`<schema>.enqueue(...)`, see README "From SQL and
other languages") through `django.db.connections[using]`: no asyncpg and no event loop in
the Django process, and no second connection whose commit could differ from the view's.
The worker checks the arguments against the task's signature before it runs the job.
`RequestIdMiddleware` gives each request its id (from `X-Request-ID`), which every job the
request enqueues carries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import msgspec
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, transaction

from taskrunner import IdempotencyConflict, InvalidArguments, TaskRunnerError, current_request_id
from taskrunner.contrib.request_ids import enter_request_id

__all__ = ["RequestIdMiddleware", "enqueue"]

DEFAULT_SCHEMA = "taskrunner"
_NAME_LIMIT = 200  # tasks, queues and request ids, as in Python and in SQL
_KEY_LIMIT = 400
_INT4 = 2**31
_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,55}")
_CONFLICT = re.compile(r"held by job (\d+)")
_encoder = msgspec.json.Encoder()


@lru_cache(maxsize=32)
def _statement(schema: str) -> str:
    """The call, for a schema name that is a plain identifier (so quoting it is safe)."""
    if not _PLAIN_IDENTIFIER.fullmatch(schema) or schema.lower().startswith("pg_"):
        raise InvalidArguments(
            None,
            f"invalid schema name {schema!r}: letters, digits and underscores, starting "
            "with a letter or underscore, at most 56 characters, not pg_*",
            field="schema",
        )
    return (
        f'SELECT "{schema}".enqueue(task => %s, args => %s::jsonb, kwargs => %s::jsonb, '
        "queue => %s, priority => %s, "
        "run_at => coalesce(%s, now() + make_interval(secs => %s::float8)), "
        "max_attempts => %s, idempotency_key => %s, request_id => %s)"
    )


def _text(value: Any, field: str, limit: int, task: str | None) -> None:
    if not isinstance(value, str) or not value or len(value) > limit or "\x00" in value:
        raise InvalidArguments(
            task, f"{field} must be a string of 1 to {limit} characters without NUL", field=field
        )


def _whole(value: Any, field: str, task: str, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value < _INT4:
        raise InvalidArguments(task, f"{field} must be an integer from {low}", field=field)


def _encoded(value: Any, task: str) -> str:
    """JSON as the worker decodes it (msgspec, like a Python enqueue), refusing what JSON
    or PostgreSQL cannot carry rather than storing it changed."""
    try:
        data = _encoder.encode(value)
    except (msgspec.EncodeError, TypeError, OverflowError, UnicodeEncodeError) as exc:
        raise InvalidArguments(task, f"the arguments are not JSON-encodable: {exc}") from None
    if b"\\u0000" in data:
        raise InvalidArguments(task, "the arguments hold a NUL character")
    if b"null" in data:  # msgspec writes nan and inf as null
        try:
            json.dumps(msgspec.to_builtins(value), allow_nan=False)
        except ValueError:
            raise InvalidArguments(task, "the arguments hold a float nan or inf") from None
    return data.decode()


def enqueue(
    task: str,
    /,
    *args: Any,
    schema: str | None = None,
    queue: str | None = None,
    priority: int = 0,
    run_at: datetime | None = None,
    delay: float | timedelta | None = None,
    max_attempts: int | None = None,
    idempotency_key: str | None = None,
    request_id: str | None = None,
    using: str = "default",
    **kwargs: Any,
) -> int:
    """Enqueue a job of `task` on Django's connection `using`, in its current transaction
    (inside `transaction.atomic()` the job exists only if that block commits); returns the
    job's id (the existing job's, for an idempotency key already used with the same
    arguments).

    `schema` defaults to `settings.TASKRUNNER_SCHEMA`, else "taskrunner"; `queue` to
    "default"; `max_attempts` to 5 (SQL cannot see the task's own); `request_id` to the
    current one (`RequestIdMiddleware`), else a new one. Bad input raises InvalidArguments
    before any SQL runs; a key held with other arguments raises IdempotencyConflict. The
    call runs in a savepoint, so either error leaves the caller's transaction usable."""
    schema = schema or getattr(settings, "TASKRUNNER_SCHEMA", DEFAULT_SCHEMA)
    statement = _statement(schema)
    _text(task, "task", _NAME_LIMIT, None)
    if queue is not None:
        _text(queue, "queue", _NAME_LIMIT, task)
    if idempotency_key is not None:
        _text(idempotency_key, "idempotency_key", _KEY_LIMIT, task)
    request_id = request_id or current_request_id()
    if request_id is not None:
        _text(request_id, "request_id", _NAME_LIMIT, task)
    _whole(priority, "priority", task, -_INT4)
    if max_attempts is not None:
        _whole(max_attempts, "max_attempts", task, 1)
    if delay is not None and run_at is not None:
        raise InvalidArguments(task, "give delay or run_at, not both", field="delay")
    if isinstance(delay, timedelta):
        delay = delay.total_seconds()
    if run_at is not None and (not isinstance(run_at, datetime) or run_at.utcoffset() is None):
        raise InvalidArguments(task, "run_at must be a datetime with a UTC offset", field="run_at")
    if delay is not None and (
        not isinstance(delay, int | float) or isinstance(delay, bool) or not 0 <= delay < 1e9
    ):
        raise InvalidArguments(task, "delay must be a number of seconds from 0", field="delay")
    params = (
        task,
        _encoded(list(args), task),
        _encoded(kwargs, task),
        queue,
        priority,
        run_at,
        delay,
        max_attempts,
        idempotency_key,
        request_id,
    )
    try:
        with transaction.atomic(using=using), connections[using].cursor() as cursor:
            cursor.execute(statement, params)
            row = cursor.fetchone()
    except IntegrityError as exc:
        held = _CONFLICT.search(str(exc))
        if idempotency_key is None or held is None:
            raise
        raise IdempotencyConflict(task, idempotency_key, int(held.group(1))) from None
    except DatabaseError as exc:
        if "taskrunner.enqueue:" in str(exc):
            raise InvalidArguments(task, str(exc).splitlines()[0]) from None
        if "does not exist" in str(exc):
            raise TaskRunnerError(
                f"no taskrunner schema {schema!r} on Django's database {using!r}: run "
                "`taskrunner migrate` for it (or open a runner of that schema once): "
                f"{str(exc).splitlines()[0]}"
            ) from None
        raise
    job_id: int = row[0]
    return job_id


class RequestIdMiddleware:
    """Takes the request id from the `X-Request-ID` header (or makes a new one when it is
    missing or unusable), makes it taskrunner's current request id while the view runs,
    sets it as `request.request_id`, and echoes it in the response's header. Subclass to
    change `header`, or set `trust_header = False` to always make a new id."""

    header = "X-Request-ID"
    trust_header = True
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _incoming(self, request: Any) -> str | None:
        if not self.trust_header:
            return None
        value: str | None = request.headers.get(self.header)
        return value

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self._acall(request)
        with ExitStack() as stack:
            request.request_id = enter_request_id(stack, self._incoming(request))
            response = self.get_response(request)
        response[self.header] = request.request_id
        return response

    async def _acall(self, request: Any) -> Any:
        with ExitStack() as stack:
            request.request_id = enter_request_id(stack, self._incoming(request))
            pending: Awaitable[Any] = self.get_response(request)
            response = await pending
        response[self.header] = request.request_id
        return response
