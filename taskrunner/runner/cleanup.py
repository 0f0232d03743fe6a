"""Retention and cleanup: `Retention`, `Cleanup`, `runner.cleanup()` and the built-in
task `runner.cleanup_task` ("taskrunner.cleanup") that a schedule can run.

Retention is the schema's, like the key lifetime (migration 0007): a runner given an
explicit `Retention` writes it when it opens, one given none reads the stored one, and
every worker prunes by what is stored at the moment it prunes. Two runners that
disagree therefore do not each prune by their own rule: the one opened last wins, for
every worker, and the change is logged.

Which action a status allows (anything else raises `InvalidArguments`, a ValueError,
before anything is changed):

    status        keep  remove  archive  rerun
    queued         x      x
    paused         x      x               x
    running        x                      x   (only jobs whose lease has run out)
    succeeded      x      x       x       x
    failed         x      x       x       x
    cancelled      x      x       x       x
    archived       x      x

Archiving is for history, so only finished jobs go there; a queued or paused job can be
removed (or, paused, rerun), and a running one only rerun once its worker is gone,
which is what a removal of a running job would hide. An archived job cannot be rerun
in place: its key may belong to a newer job; enqueue it again instead.

Schedules need no care: a schedule's jobs are ordinary jobs and the schedule's state
lives in its own table, so removing or archiving them never makes a tick run twice or
be skipped. Workflows keep what a later step needs (its parents' results) in their own
rows, so finished steps may go at any time; a finished workflow's rows go once its
steps' rows are all gone and it is past the retention (or the cleanup's age) of its
status, never while it runs.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import msgspec

from taskrunner.errors import InvalidArguments
from taskrunner.limits import MAX_DELAY_SECONDS, check_seconds
from taskrunner.queue.cleanup import (
    ARCHIVED,
    FINISHED,
    CleanupStore,
    Progress,
    RetentionSeconds,
)
from taskrunner.runner.tasks import Task

if TYPE_CHECKING:
    from taskrunner.queue import JobQueue

log = logging.getLogger("taskrunner")

CLEANUP_TASK = "taskrunner.cleanup"
# A cleanup's statements take a tenth of its time by default. Beside a running drain on
# 2 shared cores (benchmarks/cleanup_during_drain.py, a million rows removed) full speed
# left the drain about 0.6-0.7 of its rate, a quarter about 0.75, a tenth about 0.9, at
# some 11,000 rows/s. Small cleanups (one batch) never rest; pass 1 for full speed when
# no worker runs.
DEFAULT_DUTY_CYCLE = 0.1
STATUSES = ("queued", "paused", "running", "succeeded", "failed", "cancelled", ARCHIVED)
ACTIONS = ("keep", "remove", "archive", "rerun")
ALLOWED: Mapping[str, tuple[str, ...]] = {
    "queued": ("keep", "remove"),
    "paused": ("keep", "remove", "rerun"),
    "running": ("keep", "rerun"),
    "succeeded": ACTIONS,
    "failed": ACTIONS,
    "cancelled": ACTIONS,
    ARCHIVED: ("keep", "remove"),
}
# The archive goes first: what this cleanup archives is not removed again by it.
ORDER = (ARCHIVED, "succeeded", "failed", "cancelled", "queued", "paused", "running")

# The built-in task's parameter types: an action a status does not allow is refused when
# the job (or the schedule) is written, not when it runs.
QueuedAction = Literal["keep", "remove"]
PausedAction = Literal["keep", "remove", "rerun"]
RunningAction = Literal["keep", "rerun"]
FinishedAction = Literal["keep", "remove", "archive", "rerun"]
ArchivedAction = Literal["keep", "remove"]


class KeyLifetime(enum.Enum):
    """A retention that follows the schema's idempotency_ttl (and its later changes)."""

    KEY_LIFETIME = "idempotency_ttl"

    def __repr__(self) -> str:
        return "Retention.KEY_LIFETIME"


KEY_LIFETIME = KeyLifetime.KEY_LIFETIME
Keep = timedelta | None | KeyLifetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Retention:
    """How long a finished job's row is kept, per final status: a timedelta after it
    finished, `None` to keep it until a cleanup acts on it, or `Retention.KEY_LIFETIME`
    (the default of succeeded and cancelled) for as long as an idempotency key lives.
    A job with a key is kept at least until its key expired, whatever its status says.
    """

    KEY_LIFETIME: ClassVar[KeyLifetime] = KEY_LIFETIME

    succeeded: Keep = KEY_LIFETIME
    failed: Keep = timedelta(days=7)
    cancelled: Keep = KEY_LIFETIME

    def __post_init__(self) -> None:
        for status in ("succeeded", "failed", "cancelled"):
            value = getattr(self, status)
            if value is None or value is KEY_LIFETIME:
                continue
            if not isinstance(value, timedelta):
                raise InvalidArguments(
                    None,
                    f"Retention.{status} must be a timedelta, None or Retention.KEY_LIFETIME, "
                    f"not {type(value).__name__}",
                    field=status,
                )
            check_seconds(value, f"Retention.{status}", maximum=MAX_DELAY_SECONDS)

    def seconds(self) -> RetentionSeconds:
        """As stored (migration 0007): None follows the key lifetime, inf keeps."""

        def stored(value: Keep) -> float | None:
            if value is KEY_LIFETIME:
                return None
            return math.inf if value is None else value.total_seconds()

        return stored(self.succeeded), stored(self.failed), stored(self.cancelled)

    @classmethod
    def from_seconds(cls, seconds: RetentionSeconds) -> Retention:
        def read(value: float | None) -> Keep:
            if value is None:
                return KEY_LIFETIME
            return None if math.isinf(value) else timedelta(seconds=value)

        succeeded, failed, cancelled = seconds
        return cls(succeeded=read(succeeded), failed=read(failed), cancelled=read(cancelled))


class Cleanup(msgspec.Struct, frozen=True):
    """An action for one status with an age of its own:
    `cleanup(failed=Cleanup("archive", older_than=timedelta(days=1)))`."""

    action: str
    older_than: timedelta | float | None = None


def plan(
    actions: Mapping[str, str | Cleanup], older_than: timedelta | float | None
) -> dict[str, tuple[str, float]]:
    """Each status's (action, age in seconds), checked whole before anything runs."""
    default_age = _age(older_than, "older_than")
    planned: dict[str, tuple[str, float]] = {}
    for status in STATUSES:
        given = actions.get(status, "keep")
        if isinstance(given, Cleanup):
            action, age = given.action, _age(given.older_than, f"{status}.older_than")
            age = age if given.older_than is not None else default_age
        else:
            action, age = given, default_age
        if action not in ACTIONS:
            raise InvalidArguments(
                None,
                f"{status}: the action must be one of {', '.join(ACTIONS)} or a Cleanup, "
                f"not {action!r}",
                field=status,
            )
        if action not in ALLOWED[status]:
            raise InvalidArguments(
                None,
                f"{status}: {action!r} is not allowed for {status} jobs "
                f"(allowed: {', '.join(ALLOWED[status])}); nothing was changed",
                field=status,
            )
        planned[status] = (action, age)
    return planned


def _age(value: timedelta | float | None, field: str) -> float:
    if value is None:
        return 0.0
    return check_seconds(value, field, maximum=MAX_DELAY_SECONDS)


class CleanupVerbs:
    """The retention and cleanup parts of TaskRunner (kept apart from runner.py)."""

    if TYPE_CHECKING:
        schema: str
        builtin_tasks: dict[str, Task[..., Any]]

        @property
        def job_queue(self) -> JobQueue: ...

    retention: Retention
    _explicit_retention: bool

    def _init_cleanup(self, retention: Retention | None) -> None:
        """Take the retention option, and add the built-in cleanup task."""
        if retention is not None and not isinstance(retention, Retention):
            raise InvalidArguments(
                None,
                f"retention must be a Retention, not {type(retention).__name__}",
                field="retention",
            )
        self._explicit_retention = retention is not None
        self.retention = retention if retention is not None else Retention()
        self.builtin_tasks[CLEANUP_TASK] = self._cleanup_task()

    async def _settle_retention(self, db: Any) -> None:
        """Write the retention given to this runner to the schema, or take the schema's."""
        store = CleanupStore(db, self.schema)
        if not self._explicit_retention:
            self.retention = Retention.from_seconds(await store.retention())
            return
        previous = await store.set_retention(self.retention.seconds())
        if previous is not None:
            log.info(
                "retention of schema %s changed from %r to %r",
                self.schema,
                Retention.from_seconds(previous),
                self.retention,
            )

    @property
    def cleanup_task(self) -> Task[..., Any]:
        """The built-in task "taskrunner.cleanup": `cleanup()` with actions as strings and
        `older_than` in seconds, for `add_schedule` or `@runner.periodic`."""
        return self.builtin_tasks[CLEANUP_TASK]

    async def cleanup(
        self,
        *,
        queued: QueuedAction | Cleanup = "keep",
        paused: PausedAction | Cleanup = "keep",
        running: RunningAction | Cleanup = "keep",
        succeeded: FinishedAction | Cleanup = "keep",
        failed: FinishedAction | Cleanup = "keep",
        cancelled: FinishedAction | Cleanup = "keep",
        archived: ArchivedAction | Cleanup = "keep",
        older_than: timedelta | float | None = None,
        dry_run: bool = False,
        batch_size: int = 1_000,
        progress: Progress | None = None,
        duty_cycle: float = DEFAULT_DUTY_CYCLE,
    ) -> Mapping[str, int]:
        """Act once, now, on the jobs of each status: keep them, remove them, archive
        them or run them again; returns how many jobs of each status were acted on.

        Age is the time since finished_at (created_at for queued and paused jobs,
        started_at for running ones), measured from the database's clock when the
        cleanup starts; `older_than` is every status's, a `Cleanup` gives one its own.
        With `dry_run` nothing changes and the counts say what would be acted on.
        Removal, archiving and reruns go in batches of `batch_size`, each a short
        transaction that skips rows locked by anything else; `progress(status, batches,
        rows)` is called after each one. With `duty_cycle` (0.1 by default) it rests
        after each full batch so that its statements take only that fraction of the
        time, leaving the rest of the database to the workers; 1 never rests.
        """
        planned = plan(
            {
                "queued": queued,
                "paused": paused,
                "running": running,
                "succeeded": succeeded,
                "failed": failed,
                "cancelled": cancelled,
                ARCHIVED: archived,
            },
            older_than,
        )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArguments(None, "batch_size must be a positive int", field="batch_size")
        if (
            not isinstance(duty_cycle, int | float)
            or isinstance(duty_cycle, bool)
            or not 0 < duty_cycle <= 1
        ):
            raise InvalidArguments(
                None,
                f"duty_cycle must be above 0 and at most 1, not {duty_cycle!r}",
                field="duty_cycle",
            )
        store = CleanupStore(self.job_queue.db, self.schema)
        now = await store.clock()
        counts = dict.fromkeys(STATUSES, 0)
        for status in ORDER:
            action, age = planned[status]
            if action == "keep":
                continue
            cutoff = now - timedelta(seconds=age)
            if dry_run:
                counts[status] = await store.count(status, cutoff, action)
            else:
                counts[status] = await store.act(
                    status,
                    action,
                    cutoff,
                    batch=batch_size,
                    progress=progress,
                    duty_cycle=float(duty_cycle),
                )
            log.info(
                "cleanup: %s %d %s jobs%s",
                f"would {action}" if dry_run else action,
                counts[status],
                status,
                f" older than {age:g}s" if age else "",
            )
        if not dry_run:
            await self._remove_workflows(store, planned, now, batch_size, float(duty_cycle))
        return counts

    async def _remove_workflows(
        self,
        store: CleanupStore,
        planned: Mapping[str, tuple[str, float]],
        now: datetime,
        batch: int,
        duty_cycle: float,
    ) -> None:
        """A finished workflow whose steps are all gone goes too, when its status's jobs
        were removed or archived and it is as old, and past its status's retention (kept
        that long, its result stays readable whatever a cleanup did to its steps)."""
        for status in FINISHED:
            action, age = planned[status]
            if action not in ("remove", "archive"):
                continue
            cutoff = now - timedelta(seconds=age)
            removed = await store.remove_workflows(
                status, cutoff, batch=batch, duty_cycle=duty_cycle
            )
            if removed:
                log.info("cleanup: removed %d %s workflows whose steps are gone", removed, status)

    def _cleanup_task(self) -> Task[..., Any]:
        runner = self

        async def cleanup(
            queued: QueuedAction = "keep",
            paused: PausedAction = "keep",
            running: RunningAction = "keep",
            succeeded: FinishedAction = "keep",
            failed: FinishedAction = "keep",
            cancelled: FinishedAction = "keep",
            archived: ArchivedAction = "keep",
            older_than: float | None = None,
            duty_cycle: float = DEFAULT_DUTY_CYCLE,
        ) -> dict[str, int]:
            counts = await runner.cleanup(
                queued=queued,
                paused=paused,
                running=running,
                succeeded=succeeded,
                failed=failed,
                cancelled=cancelled,
                archived=archived,
                older_than=older_than,
                duty_cycle=duty_cycle,
            )
            return dict(counts)

        cleanup.__module__ = __name__
        return Task(cleanup, runner, name=CLEANUP_TASK, max_attempts=3)  # type: ignore[arg-type]


__all__ = ["CLEANUP_TASK", "Cleanup", "CleanupVerbs", "Retention", "plan"]
