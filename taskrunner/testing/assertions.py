"""What was enqueued: `assert_enqueued`, `assert_not_enqueued`, `enqueued_jobs`.

A stored call is compared with the expected one the way the handler would see it: both
are bound to the task's signature with its defaults applied, the stored one decoded to
the typed values the handler gets. So `send_email("a@b.c")` matches a job enqueued as
`send_email.enqueue(to="a@b.c", template="welcome")`, a datetime matches a datetime,
and `unittest.mock.ANY` matches any value of one argument.
"""

from __future__ import annotations

from typing import Any

import msgspec

from taskrunner import Job, JobStatus, Task, TaskRunner, UnknownTask

PAGE = 500
SHOWN = 10  # jobs listed in a failure message

_encoder = msgspec.json.Encoder()


async def enqueued_jobs(
    runner: TaskRunner,
    task: Task[..., Any] | str | None = None,
    *,
    status: JobStatus | str | None = None,
) -> list[Job]:
    """Every job of the runner's schema (of one task, of one status), oldest first."""
    jobs: list[Job] = []
    before: int | None = None
    while True:
        page = await runner.list_jobs(task=task, status=status, before_id=before, limit=PAGE)
        jobs.extend(page)
        if len(page) < PAGE:
            return jobs[::-1]
        before = page[-1].id


async def assert_enqueued(
    runner: TaskRunner, task: Task[..., Any] | str, /, *args: Any, **kwargs: Any
) -> Job:
    """Assert that a job of `task` was enqueued (in any status) with these arguments, or
    with any arguments when none are given; return the newest such job."""
    found = await _matching(runner, task, args, kwargs)
    if not found.matches:
        raise AssertionError(
            f"no job of {found.task.name} {_shown_call(args, kwargs)} was enqueued; "
            + _listing(found.jobs)
        )
    return found.matches[-1]


async def assert_not_enqueued(
    runner: TaskRunner, task: Task[..., Any] | str, /, *args: Any, **kwargs: Any
) -> None:
    """Assert that no job of `task` was enqueued with these arguments, or none at all
    when no arguments are given."""
    found = await _matching(runner, task, args, kwargs)
    if found.matches:
        raise AssertionError(
            f"{len(found.matches)} job(s) of {found.task.name} {_shown_call(args, kwargs)} "
            "were enqueued: " + ", ".join(_describe(job) for job in found.matches[-SHOWN:])
        )


class _Found(msgspec.Struct, frozen=True):
    task: Task[..., Any]
    jobs: list[Job]
    matches: list[Job]


async def _matching(
    runner: TaskRunner, task: Task[..., Any] | str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> _Found:
    resolved = _task_of(runner, task)
    expected = _bound(resolved, args, kwargs) if args or kwargs else None
    jobs = await enqueued_jobs(runner, resolved.name)
    matches = [j for j in jobs if expected is None or _stored_call(resolved, j) == expected]
    return _Found(resolved, jobs, matches)


def _task_of(runner: TaskRunner, task: Task[..., Any] | str) -> Task[..., Any]:
    name = task if isinstance(task, str) else task.name
    found = runner.tasks.get(name)
    if found is None:
        raise UnknownTask(name, list(runner.tasks))
    return found


def _bound(task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call as {parameter: value}, defaults applied."""
    try:
        bound = task.codec.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"the expected call does not fit {task.name}'s signature: {exc}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


def _stored_call(task: Task[..., Any], job: Job) -> dict[str, Any] | None:
    """The job's call as the handler would get it; None when it no longer decodes (a
    workflow step still waiting for its input, a changed signature)."""
    try:
        positional, keywords = task.codec.decode(
            _encoder.encode(job.args), _encoder.encode(job.kwargs)
        )
        bound = task.codec.signature.bind(*positional, **keywords)
    except (TypeError, ValueError):
        return None
    bound.apply_defaults()
    return dict(bound.arguments)


def _shown_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if not args and not kwargs:
        return "(any arguments)"
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"({', '.join(parts)})"


def _describe(job: Job) -> str:
    return f"#{job.id} {_shown_call(tuple(job.args), job.kwargs)} {job.status.value}"


def _listing(jobs: list[Job]) -> str:
    if not jobs:
        return "no job of that task was enqueued at all"
    shown = ", ".join(_describe(job) for job in jobs[-SHOWN:])
    more = f" (the newest {SHOWN} of {len(jobs)})" if len(jobs) > SHOWN else ""
    return f"its jobs{more}: {shown}"
