"""The tick loop every worker runs: write the runner's declared schedules, then enqueue
each due tick.

No worker leads: each polls the due schedules and offers their ticks to the database,
which takes the offer of exactly one (a compare-and-set on the schedule's next tick, in
the same statement as the jobs; see queue/schedules.py). The loop is supervised: a
database error (or any other) is logged and the loop tries again after a bounded
backoff; it never ends the worker, and stopping it is immediate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec
import tenacity

from taskrunner.errors import DatabaseError, TaskRunnerError
from taskrunner.queue.schedules import NewSchedule, ScheduleRow, ScheduleStore
from taskrunner.runner.cron import plan_ticks, ticks_of
from taskrunner.runner.schedules import ticks_of_row

if TYPE_CHECKING:
    from taskrunner.runner.runner import TaskRunner

log = logging.getLogger("taskrunner")

POLL_INTERVAL = 1.0  # seconds between polls of the schedules (and the longest sleep)
MISSED_AFTER = 5.0  # a tick enqueued later than this after its time counts as missed
BATCH = 100  # due schedules handled per poll
_STOP_TIMEOUT = 5.0


class Scheduler:
    """One worker's part in ticking the schema's schedules."""

    def __init__(self, runner: TaskRunner, *, poll_interval: float = POLL_INTERVAL) -> None:
        self.store = ScheduleStore(runner.job_queue.db, runner.schema)
        self.declared = list(runner.declared_schedules.values())
        self.poll_interval = poll_interval
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def start(cls, runner: TaskRunner) -> Scheduler:
        scheduler = cls(runner)
        scheduler._task = asyncio.create_task(scheduler.run(), name="taskrunner-schedules")
        return scheduler

    async def stop(self) -> None:
        """Stop ticking (a statement in flight is cancelled; its transaction rolls back)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self._task, _STOP_TIMEOUT)

    async def run(self) -> None:
        backoff = tenacity.wait_exponential(multiplier=0.5, max=30) + tenacity.wait_random(0, 0.5)
        failures = 0
        written = False
        while True:
            try:
                if not written:
                    await self.write_declared()
                    written = True
                pause = await self.tick_once()
                failures = 0
            except Exception as exc:  # supervised: nothing ends the loop but a stop
                failures += 1
                pause = _delay(backoff, failures)
                if isinstance(exc, DatabaseError):
                    log.warning("schedules: database unavailable (%s); again in %.1fs", exc, pause)
                else:
                    log.exception("schedules: unexpected error; again in %.1fs", pause)
            await asyncio.sleep(pause)

    async def write_declared(self) -> None:
        """Create or update the runner's `@periodic` schedules, each from its next tick."""
        now = datetime.now(UTC)
        for spec in self.declared:
            ticks = ticks_of(cron=spec.cron, every=spec.every, timezone=spec.timezone)
            fresh: NewSchedule = msgspec.structs.replace(spec, next_run_at=ticks.after(now))
            await self.store.upsert(fresh)
        if self.declared:
            log.info("schedules written: %s", ", ".join(s.name for s in self.declared))

    async def tick_once(self) -> float:
        """Enqueue every due tick; returns how long to sleep before the next poll."""
        due = await self.store.due(within=self.poll_interval, limit=BATCH)
        if due.now is None:
            return self.poll_interval
        now = due.now
        sleep = self.poll_interval
        for row in due.schedules:
            if row.next_run_at > now:
                sleep = min(sleep, (row.next_run_at - now).total_seconds())
                continue
            upcoming = await self._tick(row, now)
            if upcoming is not None:
                sleep = min(sleep, (upcoming - now).total_seconds())
        if len(due.schedules) == BATCH and sleep == self.poll_interval:
            return 0.0  # there may be more due
        return max(sleep, 0.0)

    async def _tick(self, row: ScheduleRow, now: datetime) -> datetime | None:
        """Offer the schedule's due ticks; returns its next tick."""
        try:
            plan = plan_ticks(ticks_of_row(row), row.next_run_at, now, row.missed, MISSED_AFTER)
        except TaskRunnerError as exc:  # a row written by hand, or a zone that went away
            log.error("schedule %s cannot tick: %s", row.name, exc)
            return None
        enqueued = await self.store.advance(row, plan.enqueue, plan.next_run_at)
        if enqueued is None:
            return plan.next_run_at  # another worker enqueued them, or the schedule changed
        skipped = "" if plan.enqueue else " (missed ticks skipped)"
        log.debug(
            "schedule %s: enqueued %d job(s)%s; next tick %s",
            row.name,
            enqueued,
            skipped,
            plan.next_run_at.isoformat(),
        )
        return plan.next_run_at


def _delay(wait: tenacity.wait.wait_base, attempt: int) -> float:
    state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return float(wait(state))
