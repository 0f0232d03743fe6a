"""Schedules in the bare queue: rows of the schedules table and the statements on them.

Plain data and SQL (sql/schedules.sql); the tick math lives above, in the runner, and
hands down the ticks to enqueue. Exactly one job per tick follows from the database:
`advance` enqueues ticks only if the schedule's next tick and version are still those
the caller read (a compare-and-set in the same statement as the insert).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import msgspec

from taskrunner.errors import DatabaseError
from taskrunner.queue.errors import translate_errors
from taskrunner.queue.notify import jobs_channel
from taskrunner.queue.records import JobRow, job_row
from taskrunner.queue.statements import statements_for

# A pool or one connection (asyncpg ships no types, so this is documentation).
Executor: TypeAlias = Any


class ScheduleRow(msgspec.Struct, frozen=True, kw_only=True):
    """A row of the schedules table. `args`/`kwargs` are JSON documents."""

    name: str
    task: str
    cron: str | None
    every: timedelta | None
    timezone: str
    args: bytes
    kwargs: bytes
    queue: str
    priority: int
    max_attempts: int
    missed: str
    paused: bool
    next_run_at: datetime
    last_run_at: datetime | None
    version: int


class NewSchedule(msgspec.Struct, frozen=True, kw_only=True):
    """A schedule to write; `next_run_at` is its first tick from now (kept on a replace
    whose ticks did not change)."""

    name: str
    task: str
    cron: str | None
    every: timedelta | None
    timezone: str
    args: bytes
    kwargs: bytes
    queue: str
    priority: int
    max_attempts: int
    missed: str
    next_run_at: datetime


_COLUMNS = ScheduleRow.__struct_fields__


def schedule_row(record: Mapping[str, Any]) -> ScheduleRow:
    values = {name: record[name] for name in _COLUMNS}
    for name in ("args", "kwargs"):
        if isinstance(values[name], str):
            values[name] = values[name].encode()
    return ScheduleRow(**values)


class DueSchedules(msgspec.Struct, frozen=True, kw_only=True):
    now: datetime | None  # the database's clock; None when nothing came back
    schedules: list[ScheduleRow]


class ScheduleStore:
    """The schedules of one schema, over a pool or one connection."""

    def __init__(self, db: Executor, schema: str) -> None:
        self.db = db
        self.schema = schema
        self.sql = statements_for(schema)
        self.jobs_channel = jobs_channel(schema)

    @translate_errors
    async def upsert(self, schedule: NewSchedule) -> ScheduleRow:
        """Create the schedule, or replace the one of its name (see the statement)."""
        for _ in range(3):  # a name inserted concurrently is visible on the next try
            record = await self.db.fetchrow(
                self.sql["schedule_upsert"],
                schedule.name,
                schedule.task,
                schedule.cron,
                schedule.every,
                schedule.timezone,
                schedule.args.decode(),
                schedule.kwargs.decode(),
                schedule.queue,
                schedule.priority,
                schedule.max_attempts,
                schedule.missed,
                schedule.next_run_at,
            )
            if record is not None:
                return schedule_row(record)
        raise DatabaseError(f"could not write schedule {schedule.name!r}")

    @translate_errors
    async def get(self, name: str) -> ScheduleRow | None:
        record = await self.db.fetchrow(self.sql["schedule_get"], name)
        return schedule_row(record) if record is not None else None

    @translate_errors
    async def list(self) -> list[ScheduleRow]:
        return [schedule_row(r) for r in await self.db.fetch(self.sql["schedule_list"])]

    @translate_errors
    async def due(self, *, within: float, limit: int) -> DueSchedules:
        """Unpaused schedules whose next tick is at most `within` seconds away."""
        rows = await self.db.fetch(self.sql["schedules_due"], within, limit)
        return DueSchedules(
            now=rows[0]["db_now"] if rows else None, schedules=[schedule_row(r) for r in rows]
        )

    @translate_errors
    async def advance(
        self, row: ScheduleRow, ticks: Sequence[datetime], next_run_at: datetime
    ) -> int | None:
        """Enqueue `ticks` and move the next tick to `next_run_at`, if `row` is still the
        schedule's state; returns how many jobs were enqueued, or None when another
        worker got there first (or the schedule changed): nothing was written."""
        record = await self.db.fetchrow(
            self.sql["schedule_advance"],
            row.name,
            row.version,
            row.next_run_at,
            next_run_at,
            self.jobs_channel,
            list(ticks),
        )
        if not record["advanced"]:
            return None
        inserted: int = record["inserted"]
        return inserted

    @translate_errors
    async def pause(self, name: str) -> bool:
        return await self.db.fetchrow(self.sql["schedule_pause"], name) is not None

    @translate_errors
    async def resume(self, row: ScheduleRow, next_run_at: datetime) -> bool:
        """Unpause `row` (of its version) with its next tick at `next_run_at`."""
        return (
            await self.db.fetchrow(self.sql["schedule_resume"], row.name, next_run_at, row.version)
            is not None
        )

    @translate_errors
    async def remove(self, name: str) -> bool:
        return await self.db.fetchrow(self.sql["schedule_remove"], name) is not None

    @translate_errors
    async def run_now(self, name: str, request_id: str) -> JobRow | None:
        """One job of the schedule, runnable now; None when there is no such schedule."""
        record = await self.db.fetchrow(
            self.sql["schedule_run_now"], name, request_id, self.jobs_channel
        )
        return job_row(record) if record is not None else None
