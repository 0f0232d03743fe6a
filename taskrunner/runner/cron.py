"""The tick math of schedules: when ticks fall, and which of them to enqueue.

A schedule ticks either by a five-field cron expression read in a time zone, or every
`every` counted from the Unix epoch (so every process agrees on the ticks without
talking to the others). cronsim reads the expressions, daylight-saving changes included,
the way Debian's cron does: a time that a spring change skips runs at the first minute
after it, a time that an autumn change repeats runs once. Only this module imports it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from taskrunner.errors import InvalidSchedule
from taskrunner.limits import MAX_DELAY_SECONDS

MissedPolicy = Literal["latest", "skip", "all"]
MISSED_POLICIES: tuple[str, ...] = get_args(MissedPolicy)
MAX_MISSED = 1_000  # "all" enqueues at most this many missed ticks, the most recent ones
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)
# The longest interval: its next tick must stay a date PostgreSQL and Python can hold.
MAX_EVERY = timedelta(seconds=MAX_DELAY_SECONDS)


class Ticks(ABC):
    """The ticks of one schedule, as aware UTC datetimes."""

    @abstractmethod
    def after(self, moment: datetime) -> datetime:
        """The first tick strictly after `moment`."""

    @abstractmethod
    def back_from(self, moment: datetime) -> Iterator[datetime]:
        """The ticks at or before `moment`, newest first."""


class EveryTicks(Ticks):
    """The multiples of `every` since the Unix epoch, counted in whole microseconds."""

    def __init__(self, every: timedelta) -> None:
        self.every = every
        self._step = every // _MICROSECOND

    def _index(self, moment: datetime) -> int:
        return ((moment - EPOCH) // _MICROSECOND) // self._step

    def _tick(self, index: int) -> datetime:
        return EPOCH + timedelta(microseconds=index * self._step)

    def after(self, moment: datetime) -> datetime:
        return self._tick(self._index(moment) + 1)

    def back_from(self, moment: datetime) -> Iterator[datetime]:
        index = self._index(moment)
        while True:
            yield self._tick(index)
            index -= 1


class CronTicks(Ticks):
    """The ticks of a five-field cron expression in a time zone."""

    def __init__(self, expression: str, zone: ZoneInfo) -> None:
        self.expression = expression
        self.zone = zone

    def after(self, moment: datetime) -> datetime:
        # cronsim counts from whole seconds; an autumn change can make it answer with the
        # first of a repeated hour's times when `moment` is in the second: step past it.
        for tick in CronSim(self.expression, moment.astimezone(self.zone)):
            found = tick.astimezone(UTC)
            if found > moment:
                return found
        raise InvalidSchedule(None, f"cron {self.expression!r} has no tick after {moment}")

    def back_from(self, moment: datetime) -> Iterator[datetime]:
        # Ticks are whole seconds: those at or before `moment` are those before the next
        # whole second (taken in UTC, so no local time that a change skips is made up).
        start = moment.replace(microsecond=0) + _SECOND
        newest = start
        for tick in CronSim(self.expression, start.astimezone(self.zone), reverse=True):
            found = tick.astimezone(UTC)
            if found < newest and found <= moment:
                newest = found
                yield found


def zone_named(timezone: str, name: str | None = None) -> ZoneInfo:
    if not isinstance(timezone, str) or not timezone:
        raise InvalidSchedule(name, f"timezone must be a time zone name, not {timezone!r}")
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidSchedule(name, f"unknown time zone {timezone!r}") from None


def ticks_of(
    *,
    cron: str | None,
    every: timedelta | float | None,
    timezone: str = "UTC",
    name: str | None = None,
) -> Ticks:
    """The ticks of exactly one of `cron` (read in `timezone`) or `every` (a timedelta,
    or seconds, of at least one second); InvalidSchedule for anything else."""
    zone = zone_named(timezone, name)
    if (cron is None) == (every is None):
        raise InvalidSchedule(name, "give exactly one of cron= or every=")
    if every is not None:
        if isinstance(every, int | float) and not isinstance(every, bool):
            if not MAX_EVERY.total_seconds() >= every >= 0:  # also refuses nan
                raise InvalidSchedule(
                    name, f"every must be 1 to {MAX_EVERY.total_seconds():g} seconds, not {every}"
                )
            every = timedelta(seconds=every)
        if not isinstance(every, timedelta):
            raise InvalidSchedule(name, f"every must be a timedelta, not {every!r}")
        if every < _SECOND:
            raise InvalidSchedule(name, f"every must be at least one second, not {every}")
        if every > MAX_EVERY:
            raise InvalidSchedule(name, f"every must be at most {MAX_EVERY}, not {every}")
        return EveryTicks(every)
    if not isinstance(cron, str) or len(cron.split()) != 5:
        raise InvalidSchedule(
            name, f"cron must be five fields (minute hour day month weekday), not {cron!r}"
        )
    ticks = CronTicks(" ".join(cron.split()), zone)
    try:
        ticks.after(datetime.now(UTC))
    except (CronSimError, StopIteration) as exc:
        raise InvalidSchedule(
            name, f"bad cron expression {cron!r}: {exc or 'never ticks'}"
        ) from None
    except InvalidSchedule:
        raise InvalidSchedule(name, f"cron {cron!r} never ticks") from None
    return ticks


@dataclass(frozen=True, slots=True)
class TickPlan:
    """What a worker writes for a due schedule: the ticks to enqueue (oldest first) and
    the schedule's next tick after them."""

    enqueue: list[datetime]
    next_run_at: datetime


def plan_ticks(
    ticks: Ticks,
    next_run_at: datetime,
    now: datetime,
    missed: str,
    missed_after: float,
) -> TickPlan:
    """The ticks from `next_run_at` (the first not enqueued yet) up to `now`.

    A tick at most `missed_after` seconds old is on time and always enqueued: a running
    worker enqueues each tick within about a second. An older one was missed (no worker
    ran, or none reached the database): `missed` says which of those to enqueue, the
    most recent one ("latest"), none ("skip"), or each, the most recent MAX_MISSED
    ("all").
    """
    if next_run_at > now:
        return TickPlan([], next_run_at)
    cutoff = now - timedelta(seconds=missed_after)
    on_time: list[datetime] = []
    for tick in ticks.back_from(now):
        if tick < next_run_at or tick < cutoff or len(on_time) >= MAX_MISSED:
            break
        on_time.append(tick)
    late: list[datetime] = []
    keep = {"latest": 1, "skip": 0, "all": MAX_MISSED}[missed]
    if keep and next_run_at < cutoff:
        for tick in ticks.back_from(cutoff - _MICROSECOND):
            if tick < next_run_at or len(late) >= keep:
                break
            late.append(tick)
    return TickPlan(late[::-1] + on_time[::-1], ticks.after(now))
