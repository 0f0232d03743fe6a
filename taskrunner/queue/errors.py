"""Driver errors become taskrunner errors at the queue's boundary.

Nothing from asyncpg (or from the socket under it) reaches the layers above: an error
that means the connection is gone or unusable becomes a ConnectError, which callers may
retry on a new connection; anything else the driver or the server raises becomes a
DatabaseError.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import asyncpg

from taskrunner.errors import ConnectError, DatabaseError, DataRefused, TaskRunnerError

P = ParamSpec("P")
R = TypeVar("R")

# The connection is gone, or in a state where only a new one helps: the server ended it
# (terminated backend, shutdown, crash), the socket failed, a command outlived its
# timeout (asyncpg cancels it; a dead peer is noticed this way), or the driver lost
# track of the protocol (InternalClientError: seen on the next query after the server
# closed the connection in the middle of a reply).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.IdleSessionTimeoutError,
    asyncpg.InternalClientError,
)

# Everything else the driver raises on its own: InterfaceError and its subclasses
# ("connection is closed", "cannot perform operation: another operation is in
# progress", bad argument types), and every error the server reports.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)

# The server (or the driver, encoding an argument) cannot take a value: retrying the same
# values fails the same way.
_VALUE_REFUSED = (asyncpg.DataError, asyncpg.exceptions.ProgramLimitExceededError)

_SCHEMA_MISSING = (
    asyncpg.UndefinedTableError,
    asyncpg.UndefinedFunctionError,
    asyncpg.InvalidSchemaNameError,  # the schema itself does not exist yet
)


def _is_closed_connection(exc: BaseException) -> bool:
    """asyncpg says "connection is closed" (or "... was closed in the middle of
    operation") as a plain InterfaceError."""
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


def is_connection_lost(exc: BaseException) -> bool:
    """A driver error after which only a new connection helps (see CONNECTION_ERRORS)."""
    return isinstance(exc, CONNECTION_ERRORS) or _is_closed_connection(exc)


def translate_error(exc: BaseException, schema: str = "?") -> TaskRunnerError:
    """The taskrunner error for a driver error (its cause is the driver's error)."""
    if isinstance(exc, TaskRunnerError):
        return exc
    if isinstance(exc, asyncpg.exceptions.OutdatedSchemaCacheError):  # the connection is fine
        return DatabaseError(str(exc))
    if is_connection_lost(exc):
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, TimeoutError):
            detail = "no answer in time (the connection or the server may be dead)"
        return ConnectError(f"lost the database connection: {detail}")
    if isinstance(exc, _VALUE_REFUSED):
        return DataRefused(str(exc) or type(exc).__name__)
    if isinstance(exc, _SCHEMA_MISSING):
        return DatabaseError(f"{exc} (is schema {schema!r} migrated? run `taskrunner migrate`)")
    return DatabaseError(str(exc) or type(exc).__name__)


def translate_errors(
    method: Callable[P, Awaitable[R]],
) -> Callable[P, Awaitable[R]]:
    """Turn driver errors into taskrunner errors for a queue method (first argument: the
    queue, whose schema the message names)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except TaskRunnerError:
            raise
        except (*CONNECTION_ERRORS, *DRIVER_ERRORS) as exc:
            schema = getattr(args[0], "schema", "?") if args else "?"
            raise translate_error(exc, schema) from exc

    return wrapper
