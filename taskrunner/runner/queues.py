"""Queue controls: `configure_queue`, `pause_queue`, `resume_queue`, `queues()`.

Settings are checked here and stored in the database (queue/queues.py), which enforces
them for every worker of the cluster; see migration 0008 for how.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from taskrunner.errors import InvalidArguments
from taskrunner.limits import INT32_MAX, MAX_DELAY_SECONDS, MAX_NAME_LENGTH, check_int, check_text
from taskrunner.queue.queues import QueueControls

if TYPE_CHECKING:
    from taskrunner.queue import JobQueue


class RateLimit(msgspec.Struct, frozen=True):
    """At most `n` jobs of a queue start per `per`, across all workers (a sliding window:
    any stretch of time `per` long holds at most `n` starts)."""

    n: int
    per: timedelta = timedelta(seconds=1)

    def __post_init__(self) -> None:
        check_int(self.n, "rate_limit.n", minimum=1, maximum=INT32_MAX)
        if not isinstance(self.per, timedelta):
            raise InvalidArguments(
                None,
                f"rate_limit.per must be a timedelta, not {type(self.per).__name__}",
                field="rate_limit.per",
            )
        seconds = self.per.total_seconds()
        if not 0 < seconds <= MAX_DELAY_SECONDS:
            raise InvalidArguments(
                None,
                f"rate_limit.per must be positive and at most {MAX_DELAY_SECONDS:g} seconds, "
                f"not {seconds:g}",
                field="rate_limit.per",
            )


class QueueInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A queue: its settings, and how many of its jobs are in each status (statuses with
    no job are left out). Queues with jobs but no settings are listed too."""

    name: str
    paused: bool
    concurrency: int | None
    rate_limit: RateLimit | None
    counts: dict[str, int]


def check_queue_name(name: Any) -> str:
    return check_text(name, "queue", MAX_NAME_LENGTH)


def check_concurrency(value: Any) -> int | None:
    if value is None:
        return None
    return check_int(value, "concurrency", minimum=1, maximum=INT32_MAX)


def check_rate_limit(value: Any) -> RateLimit | None:
    if value is None or isinstance(value, RateLimit):
        return value
    raise InvalidArguments(
        None,
        f"rate_limit must be a RateLimit or None, not {type(value).__name__}",
        field="rate_limit",
    )


class QueueVerbs:
    """The queue-control verbs of TaskRunner (a part of it, kept apart)."""

    if TYPE_CHECKING:
        schema: str

        @property
        def job_queue(self) -> JobQueue: ...

    @property
    def _queue_controls(self) -> QueueControls:
        return QueueControls(self.job_queue.db, self.schema)

    async def configure_queue(
        self, name: str, *, concurrency: int | None = None, rate_limit: RateLimit | None = None
    ) -> None:
        """Set a queue's limits for the whole cluster; None lifts one. The queue's pause
        is kept. Jobs of the queue already running count against its concurrency."""
        checked = check_queue_name(name)
        limit = check_rate_limit(rate_limit)
        await self._queue_controls.configure(
            checked,
            concurrency=check_concurrency(concurrency),
            rate_limit=limit.n if limit is not None else None,
            rate_per=limit.per.total_seconds() if limit is not None else None,
        )

    async def pause_queue(self, name: str) -> bool:
        """No job of the queue starts on any worker until it is resumed (running ones
        finish; enqueueing still works). Whether it was running before."""
        return await self._queue_controls.pause(check_queue_name(name))

    async def resume_queue(self, name: str) -> bool:
        """Let a paused queue's jobs start again; whether it was paused."""
        return await self._queue_controls.resume(check_queue_name(name))

    async def queues(self) -> list[QueueInfo]:
        """Every queue with settings or jobs, by name."""
        return [
            QueueInfo(
                name=row.name,
                paused=row.paused,
                concurrency=row.concurrency,
                rate_limit=(
                    RateLimit(row.rate_limit, per=timedelta(seconds=row.rate_per))
                    if row.rate_limit is not None and row.rate_per is not None
                    else None
                ),
                counts=row.counts,
            )
            for row in await self._queue_controls.list_all()
        ]
