"""`@runner.task(...)` options checked when the task is declared, not when a job runs.

A lease or timeout that cannot be stored or waited on, a priority outside the column's
range, or a task that a process-pool child cannot import would otherwise fail later,
in a worker, for every job of the task (and a bad lease for every claim of that worker).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

from taskrunner.errors import InvalidArguments
from taskrunner.limits import (
    INT32_MAX,
    MAX_LEASE_SECONDS,
    MAX_NAME_LENGTH,
    MAX_TIMEOUT_SECONDS,
    check_int,
    check_seconds,
    check_text,
)
from taskrunner.runner.retry import Retry


class TaskOptions(NamedTuple):
    name: str
    queue: str
    priority: int
    max_attempts: int
    retry: Retry
    timeout: float | None
    lease: float

    @classmethod
    def check(
        cls,
        qualname: str,
        *,
        name: Any,
        queue: Any,
        priority: Any,
        max_attempts: Any,
        retry: Any,
        timeout: Any,
        lease: Any,
    ) -> TaskOptions:
        """The options as the task keeps them; InvalidArguments naming the first bad one."""
        try:
            if retry is not None and not isinstance(retry, Retry):
                raise InvalidArguments(
                    None, f"retry must be a Retry, not {type(retry).__name__}", field="retry"
                )
            policy = retry or Retry()
            return cls(
                name=check_text(name, "name", MAX_NAME_LENGTH),
                queue=check_text(queue, "queue", MAX_NAME_LENGTH),
                priority=check_int(priority, "priority"),
                max_attempts=(
                    check_int(max_attempts, "max_attempts", minimum=1, maximum=INT32_MAX)
                    if max_attempts is not None
                    else policy.max_attempts
                ),
                retry=policy,
                timeout=(
                    check_seconds(timeout, "timeout", maximum=MAX_TIMEOUT_SECONDS, positive=True)
                    if timeout is not None
                    else None
                ),
                lease=check_seconds(lease, "lease", maximum=MAX_LEASE_SECONDS, positive=True),
            )
        except InvalidArguments as exc:
            raise InvalidArguments(
                None, f"@runner.task of {qualname}: {exc.detail}", field=exc.field
            ) from None


EXECUTORS: tuple[str, ...] = ("async", "thread", "process")


def check_function(func: Any, executor: Any, reserved: frozenset[str]) -> tuple[str, str, bool]:
    """The function's qualified name, its executor and whether it is a coroutine
    function; InvalidArguments (also a TypeError) when it cannot be a task."""
    if not callable(func):
        raise InvalidArguments(None, f"@task needs a function, got {func!r}", field="func")
    qualname = getattr(func, "__qualname__", repr(func))
    clashes = sorted(reserved & set(inspect.signature(func).parameters))
    if clashes:
        raise InvalidArguments(
            None,
            f"task {qualname} has parameter(s) {', '.join(clashes)} named like enqueue "
            f"options; rename them (enqueue options: {', '.join(sorted(reserved))})",
            field="parameters",
        )
    is_async = inspect.iscoroutinefunction(func)
    chosen = executor or ("async" if is_async else "thread")
    if chosen not in EXECUTORS:
        raise InvalidArguments(
            None,
            f"executor must be one of {', '.join(EXECUTORS)}, not {chosen!r}",
            field="executor",
        )
    if chosen == "async" and not is_async:
        raise InvalidArguments(
            None,
            f"executor='async' needs a coroutine function; {qualname} is not",
            field="executor",
        )
    if chosen == "process":
        check_importable(func, qualname)
    return qualname, chosen, is_async


def check_importable(func: Callable[..., Any], qualname: str) -> None:
    """A process-pool child finds the task by importing its module and looking up its
    qualified name: a lambda or a function defined inside another cannot be found."""
    if "<locals>" in qualname or "<lambda>" in qualname:
        raise InvalidArguments(
            None,
            f"executor='process' needs a function defined at the top level of a module; "
            f"{qualname} is {'a lambda' if '<lambda>' in qualname else 'local'}, so the "
            "pool's children cannot import it",
            field="executor",
        )
    module = getattr(func, "__module__", None)
    if not module or module not in sys.modules:
        raise InvalidArguments(
            None,
            f"executor='process' needs a function of an importable module; {qualname} "
            f"belongs to {module!r}",
            field="executor",
        )
