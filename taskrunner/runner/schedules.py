"""Periodic tasks: `@runner.periodic`, `add_schedule` and the other schedule verbs.

A schedule is stored in the database (queue/schedules.py) and survives restarts. Its
definition is checked here before anything is written: the ticks (runner/cron.py) and
the arguments, like an enqueue's. The tick loop that every worker runs is in
runner/scheduler.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from taskrunner.errors import DatabaseError, InvalidArguments, InvalidSchedule, ScheduleNotFound
from taskrunner.jobs import Job
from taskrunner.limits import MAX_NAME_LENGTH, check_text
from taskrunner.queue.schedules import NewSchedule, ScheduleRow, ScheduleStore
from taskrunner.runner.codec import ArgumentsError
from taskrunner.runner.context import current_request_id, new_request_id
from taskrunner.runner.cron import MISSED_POLICIES, EveryTicks, Ticks, ticks_of
from taskrunner.runner.options import Options
from taskrunner.runner.tasks import Task

if TYPE_CHECKING:
    from taskrunner.queue import JobQueue

TaskT = TypeVar("TaskT", bound=Task[..., Any])
_json = msgspec.json.Decoder()


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    """A stored schedule. `next_run_at` is its next tick not enqueued yet; `last_run_at`
    the latest tick that was."""

    name: str
    task: str
    cron: str | None
    every: timedelta | None
    timezone: str
    args: list[Any]
    kwargs: dict[str, Any]
    queue: str
    priority: int
    missed: str
    paused: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    max_attempts: int

    @classmethod
    def from_row(cls, row: ScheduleRow) -> Schedule:
        return cls(
            name=row.name,
            task=row.task,
            cron=row.cron,
            every=row.every,
            timezone=row.timezone,
            args=_json.decode(row.args),
            kwargs=_json.decode(row.kwargs),
            queue=row.queue,
            priority=row.priority,
            missed=row.missed,
            paused=row.paused,
            next_run_at=row.next_run_at,
            last_run_at=row.last_run_at,
            max_attempts=row.max_attempts,
        )


def ticks_of_row(row: ScheduleRow) -> Ticks:
    return ticks_of(cron=row.cron, every=row.every, timezone=row.timezone, name=row.name)


def schedule_definition(
    name: str,
    task: Task[..., Any],
    *,
    cron: str | None,
    every: timedelta | float | None,
    timezone: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    queue: str | None,
    priority: int | None,
    max_attempts: int | None,
    missed: str,
) -> NewSchedule:
    """A checked schedule, ready to write; InvalidSchedule (its name and ticks) or
    InvalidArguments naming the field (its arguments and enqueue options, checked as an
    enqueue checks them, so every tick's job can be written) otherwise."""
    if not isinstance(name, str) or not name:
        raise InvalidSchedule(None, f"name must be a non-empty string, not {name!r}")
    try:
        check_text(name, "name", MAX_NAME_LENGTH)
    except InvalidArguments as exc:
        raise InvalidSchedule(None, exc.detail) from None
    ticks = ticks_of(cron=cron, every=every, timezone=timezone, name=name)
    if missed not in MISSED_POLICIES:
        raise InvalidSchedule(name, f"missed must be one of {', '.join(MISSED_POLICIES)}")
    options = Options.build(task, None, None, None, priority, queue, max_attempts)
    try:
        call = task.codec.encode(*_call_of(task, args, kwargs), fingerprint=False)
    except ArgumentsError as exc:
        raise InvalidArguments(task.name, str(exc)) from None
    return NewSchedule(
        name=name,
        task=task.name,
        cron=" ".join(cron.split()) if cron is not None else None,
        every=ticks.every if isinstance(ticks, EveryTicks) else None,
        timezone=timezone,
        args=call.args,
        kwargs=call.kwargs,
        queue=options.queue,
        priority=options.priority,
        max_attempts=options.max_attempts,
        missed=missed,
        next_run_at=ticks.after(datetime.now(UTC)),
    )


def _call_of(
    task: Task[..., Any], args: object, kwargs: object
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A schedule's `args` and `kwargs` as a call, or InvalidArguments naming which is not
    a sequence or mapping."""
    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        kind = type(args).__name__
        raise InvalidArguments(
            task.name,
            f"args must be a list or tuple of positional arguments, not {kind}",
            field="args",
        )
    if kwargs is not None and not isinstance(kwargs, Mapping):
        kind = type(kwargs).__name__
        raise InvalidArguments(
            task.name, f"kwargs must be a mapping of keyword arguments, not {kind}", field="kwargs"
        )
    return tuple(args), dict(kwargs or {})


class ScheduleVerbs:
    """The schedule verbs of TaskRunner (a part of it, kept apart)."""

    if TYPE_CHECKING:
        schema: str
        declared_schedules: dict[str, NewSchedule]

        @property
        def job_queue(self) -> JobQueue: ...

        def _task_for(self, task: Task[..., Any] | str | Callable[..., Any]) -> Task[..., Any]: ...

    @property
    def schedule_store(self) -> ScheduleStore:
        return ScheduleStore(self.job_queue.db, self.schema)

    def periodic(
        self,
        *,
        cron: str | None = None,
        every: timedelta | float | None = None,
        timezone: str = "UTC",
        name: str | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        missed: str = "latest",
    ) -> Callable[[TaskT], TaskT]:
        """Declare a schedule of the task below (`@runner.periodic(...)` over
        `@runner.task`); checked now, written by each worker of this runner when it
        starts. The name defaults to the task's."""

        def declare(task: TaskT) -> TaskT:
            if not isinstance(task, Task):
                raise TypeError("@runner.periodic goes above @runner.task, on a task")
            spec = schedule_definition(
                name if name is not None else task.name,
                task,
                cron=cron,
                every=every,
                timezone=timezone,
                args=args,
                kwargs=kwargs,
                queue=queue,
                priority=priority,
                max_attempts=max_attempts,
                missed=missed,
            )
            self.declared_schedules[spec.name] = spec
            return task

        return declare

    async def add_schedule(
        self,
        name: str,
        task: Task[..., Any] | str,
        *,
        cron: str | None = None,
        every: timedelta | float | None = None,
        timezone: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        queue: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        missed: str = "latest",
    ) -> Schedule:
        """Write a schedule now; the same name again replaces it (keeping its paused
        state, and its next tick unless the ticks changed)."""
        spec = schedule_definition(
            name,
            self._task_for(task),
            cron=cron,
            every=every,
            timezone=timezone,
            args=args,
            kwargs=kwargs,
            queue=queue,
            priority=priority,
            max_attempts=max_attempts,
            missed=missed,
        )
        return Schedule.from_row(await self.schedule_store.upsert(spec))

    async def list_schedules(self) -> list[Schedule]:
        """Every schedule of the schema, by name."""
        return [Schedule.from_row(r) for r in await self.schedule_store.list()]

    async def pause_schedule(self, name: str) -> bool:
        """Stop enqueueing its ticks; False when it was paused already (or is unknown)."""
        return await self.schedule_store.pause(name)

    async def resume_schedule(self, name: str) -> bool:
        """Tick again from the next tick after now (ticks that passed while it was paused
        are not run); False when it was not paused (or is unknown)."""
        store = self.schedule_store
        for _ in range(5):  # the definition may change under us: read it again
            row = await store.get(name)
            if row is None or not row.paused:
                return False
            if await store.resume(row, ticks_of_row(row).after(datetime.now(UTC))):
                return True
        raise DatabaseError(f"schedule {name!r} kept changing while it was resumed")

    async def remove_schedule(self, name: str) -> bool:
        """Delete it; its jobs already enqueued stay. False when there was none."""
        return await self.schedule_store.remove(name)

    async def run_schedule_now(self, name: str) -> Job:
        """One extra job of the schedule, runnable now, outside its ticks."""
        row = await self.schedule_store.run_now(name, current_request_id() or new_request_id())
        if row is None:
            raise ScheduleNotFound(name)
        return Job.from_row(row)
