"""Public records: Job, JobStatus and the shapes of stats()."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import msgspec

from taskrunner.queue.records import JobRow, QueueCount


class JobStatus(enum.StrEnum):
    """A job's status; the values are the lowercase words stored in the database."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    WAITING = "waiting"  # a workflow step whose parents have not all succeeded yet

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
_STATUS_BY_VALUE = {status.value: status for status in JobStatus}  # faster than JobStatus(v)

_json = msgspec.json.Decoder()
DEFAULT_QUEUE = "default"


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A job as stored. `args`, `kwargs` and `result` are the decoded JSON documents."""

    id: int
    task: str
    queue: str
    status: JobStatus
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int
    attempts: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None
    result: Any
    request_id: str | None
    idempotency_key: str | None
    deduplicated: bool = False
    workflow_id: int | None = None  # set on every step of a workflow

    @classmethod
    def from_row(cls, row: JobRow, *, deduplicated: bool = False) -> Job:
        return cls(
            id=row.id,
            task=row.task,
            queue=row.queue,
            status=_STATUS_BY_VALUE[row.status],
            args=_json.decode(row.args),
            kwargs=_json.decode(row.kwargs),
            priority=row.priority,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            run_at=row.run_at,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            last_error=row.last_error,
            result=_json.decode(row.result) if row.result is not None else None,
            request_id=row.request_id,
            idempotency_key=row.idempotency_key,
            deduplicated=deduplicated,
            workflow_id=row.workflow_id,
        )


class QueueStats(msgspec.Struct, frozen=True, kw_only=True):
    """Counts of one queue by status; `stats["default"]["queued"]` reads one."""

    queue: str
    counts: dict[str, int]
    oldest_queued_age: float | None  # seconds the oldest due job has waited

    def __getitem__(self, status: str | JobStatus) -> int:
        return self.counts[str(status)]


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    """Counts per queue and status, totals, and the oldest due job's wait in seconds.

    `queues` holds every queue that has jobs, and always "default"; `stats[name]` of a
    queue without jobs gives zeros."""

    queues: dict[str, QueueStats]
    totals: dict[str, int]
    oldest_queued_age: float | None

    def __getitem__(self, queue: str) -> QueueStats:
        found = self.queues.get(queue)
        if found is None:
            zeros = dict.fromkeys((s.value for s in JobStatus), 0)
            return QueueStats(queue=queue, counts=zeros, oldest_queued_age=None)
        return found

    @classmethod
    def from_counts(cls, rows: list[QueueCount]) -> Stats:
        statuses = [s.value for s in JobStatus]
        per_queue: dict[str, dict[str, int]] = {DEFAULT_QUEUE: dict.fromkeys(statuses, 0)}
        ages: dict[str, float | None] = {}
        for row in rows:
            per_queue.setdefault(row.queue, dict.fromkeys(statuses, 0))[row.status] = row.count
            if row.oldest_queued_age is not None:
                ages[row.queue] = row.oldest_queued_age
        queues = {
            name: QueueStats(queue=name, counts=counts, oldest_queued_age=ages.get(name))
            for name, counts in per_queue.items()
        }
        totals = {s: sum(q.counts[s] for q in queues.values()) for s in statuses}
        known = [age for age in ages.values() if age is not None]
        oldest = max(known) if known else None
        return cls(queues=queues, totals=totals, oldest_queued_age=oldest)
