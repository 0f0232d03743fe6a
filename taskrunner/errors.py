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
            "its notification channels, which PostgreSQL limits to 63)"
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


class InvalidArguments(TaskRunnerError, TypeError):
    """The arguments do not fit the task's signature or type hints; nothing was written."""

    def __init__(self, task: str, detail: str, *, index: int | None = None) -> None:
        self.task = task
        self.detail = detail
        self.index = index
        where = f" (call #{index})" if index is not None else ""
        super().__init__(f"invalid arguments for task {task!r}{where}: {detail}")


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
        self.delay = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        if self.delay < 0:
            raise ValueError("RetryLater delay must not be negative")
        self.message = message
        super().__init__(message or f"retry requested in {self.delay:g}s")

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its fields when it crosses a process boundary.
        return (type(self), (self.delay, self.message))


class PermanentFailure(TaskRunnerError):
    """Raised by a handler to fail the job at once, without further attempts."""
