"""Every error taskrunner raises, under one root, with structured attributes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any


class TaskRunnerError(Exception):
    """Root of every error taskrunner raises on purpose."""


class InvalidSchemaName(TaskRunnerError, ValueError):
    """A schema name that is not a plain identifier; refused before any SQL runs."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        super().__init__(
            f"invalid schema name {schema!r}: use letters, digits and underscores, "
            "starting with a letter or underscore, at most 56 characters (the schema names "
            "its notification channels, which PostgreSQL limits to 63), and neither pg_* "
            "nor information_schema (PostgreSQL keeps those for itself)"
        )


class DatabaseError(TaskRunnerError):
    """PostgreSQL refused a statement of the queue (the driver's error is the cause)."""


class DataRefused(DatabaseError):
    """PostgreSQL refused a value of the statement (a NUL character, a number or interval
    out of range, a value too large): the same values would be refused again."""


class ConnectError(DatabaseError, ConnectionError):
    """PostgreSQL could not be reached; says what was tried and where the DSN came from."""


class EmbeddedUnavailable(ConnectError):
    """No DSN is configured and the embedded PostgreSQL is not installed."""


class SchemaOutOfDate(TaskRunnerError):
    """The schema lacks migrations and the runner may not apply them itself."""

    def __init__(self, schema: str, pending: list[str]) -> None:
        self.schema = schema
        self.pending = pending
        super().__init__(
            f"schema {schema!r} is missing migrations {', '.join(pending)}; "
            "run `taskrunner migrate` (or `await runner.migrate()`, "
            "or open the runner with auto_migrate=True)"
        )


class MigrationError(TaskRunnerError):
    """A migration failed; nothing of it was applied."""

    def __init__(self, schema: str, version: str, cause: BaseException) -> None:
        self.schema = schema
        self.version = version
        super().__init__(f"migration {version} failed in schema {schema!r}: {cause}")


class InvalidArguments(TaskRunnerError, TypeError, ValueError):
    """A call's arguments or options are not what taskrunner accepts; nothing was written.

    Both a TypeError and a ValueError, so callers' existing handlers of either catch it.
    `field` names the option or argument at fault when one is."""

    def __init__(
        self,
        task: str | None,
        detail: str,
        *,
        index: int | None = None,
        field: str | None = None,
    ) -> None:
        self.task = task
        self.detail = detail
        self.index = index
        self.field = field
        where = f" (call #{index})" if index is not None else ""
        if task is None:  # an option or a declaration: the detail says whose
            super().__init__(f"{detail}{where}")
        else:
            super().__init__(f"invalid arguments for task {task!r}{where}: {detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its fields when it crosses a process boundary.
        fields = (type(self), self.task, self.detail, self.index, self.field)
        return (_rebuild_invalid_arguments, fields)


def _rebuild_invalid_arguments(
    cls: type[InvalidArguments],
    task: str | None,
    detail: str,
    index: int | None,
    field: str | None,
) -> InvalidArguments:
    return cls(task, detail, index=index, field=field)


class UnknownTask(TaskRunnerError, LookupError):
    """No task of that name is registered on this runner."""

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        self.name = name
        self.known = sorted(known or [])
        hint = f"; registered: {', '.join(self.known)}" if self.known else ""
        super().__init__(f"unknown task {name!r}{hint}")

    def __str__(self) -> str:  # LookupError would print repr(args)
        return str(self.args[0])


class IdempotencyConflict(TaskRunnerError):
    """The key is taken by a job of the same task with different arguments."""

    def __init__(
        self,
        task: str,
        idempotency_key: str,
        existing_job_id: int | None,
        *,
        index: int | None = None,
    ) -> None:
        self.task = task
        self.idempotency_key = idempotency_key
        self.existing_job_id = existing_job_id
        self.index = index
        where = f" (call #{index})" if index is not None else ""
        holder = f"job {existing_job_id}" if existing_job_id is not None else "another call"
        super().__init__(
            f"idempotency key {idempotency_key!r} of task {task!r} is already used by "
            f"{holder} with different arguments{where}; nothing was written"
        )


class JobFailed(TaskRunnerError):
    """The job ended failed; `runner.result()` raises this."""

    def __init__(self, job_id: int, error: str | None, job: Any = None) -> None:
        self.job_id = job_id
        self.error = error
        self.job = job
        super().__init__(f"job {job_id} failed: {error}")


class JobCancelled(TaskRunnerError):
    """The job ended cancelled; `runner.result()` raises this."""

    def __init__(self, job_id: int, job: Any = None) -> None:
        self.job_id = job_id
        self.job = job
        super().__init__(f"job {job_id} was cancelled")


class JobNotFound(TaskRunnerError, LookupError):
    """No job has that id (it may have been pruned after its retention)."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"no job with id {job_id}")

    def __str__(self) -> str:
        return str(self.args[0])


class RetryLater(TaskRunnerError):
    """Raised by a handler to ask for another attempt after `delay` seconds."""

    def __init__(self, delay: float | timedelta = 0.0, message: str | None = None) -> None:
        from taskrunner.limits import MAX_DELAY_SECONDS, check_seconds  # limits imports us

        # A delay no row can hold would fail the ack of this job and of its whole batch.
        self.delay = check_seconds(delay, "RetryLater delay", maximum=MAX_DELAY_SECONDS)
        self.message = message
        super().__init__(message or f"retry requested in {self.delay:g}s")

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its fields when it crosses a process boundary.
        return (type(self), (self.delay, self.message))


class PermanentFailure(TaskRunnerError):
    """Raised by a handler to fail the job at once, without further attempts."""


class InvalidSchedule(TaskRunnerError, ValueError):
    """A schedule that cannot tick: a bad cron expression or time zone, both or neither
    of cron/every, an interval under a second, an unknown missed policy. Nothing was
    written."""

    def __init__(self, name: str | None, detail: str) -> None:
        self.name = name
        self.detail = detail
        which = f"schedule {name!r}" if name else "schedule"
        super().__init__(f"invalid {which}: {detail}; nothing was written")


class ScheduleNotFound(TaskRunnerError, LookupError):
    """No schedule has that name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no schedule named {name!r}")

    def __str__(self) -> str:
        return str(self.args[0])
