"""Rows in and out of the bare queue: plain data, JSON payloads kept as raw bytes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec


class NewJob(msgspec.Struct, frozen=True, kw_only=True):
    """A job to insert. `args`/`kwargs` are JSON documents (an array and an object)."""

    task: str
    args: bytes = b"[]"
    kwargs: bytes = b"{}"
    queue: str = "default"
    priority: int = 0
    run_at: datetime | None = None  # absolute time; wins over delay
    delay: float = 0.0  # seconds after the database's now()
    max_attempts: int = 5
    idempotency_key: str | None = None
    fingerprint: str | None = None  # "same call" identity; derived from args when None
    request_id: str | None = None
    # The enqueue's W3C trace context as a JSON document (runner/tracing.py), or None.
    trace_context: bytes | None = None


class JobRow(msgspec.Struct, frozen=True, kw_only=True):
    """A row of the jobs table, as stored."""

    id: int
    task: str
    queue: str
    status: str
    args: bytes
    kwargs: bytes
    priority: int
    run_at: datetime
    attempts: int
    max_attempts: int
    idempotency_key: str | None
    fingerprint: str | None
    request_id: str | None
    lease_id: int | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    last_error: str | None
    result: bytes | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    workflow_id: int | None = None  # the workflow the job is a step of (migration 0010)
    trace_context: bytes | None = None  # a JSON document (migration 0011)

    @property
    def lease(self) -> Lease:
        if self.lease_id is None:
            raise ValueError(f"job {self.id} holds no lease")
        return Lease(job_id=self.id, lease_id=self.lease_id)


JOB_COLUMNS: tuple[str, ...] = JobRow.__struct_fields__
_JSON_COLUMNS = ("args", "kwargs", "result", "trace_context")


def job_row(record: Mapping[str, Any]) -> JobRow:
    """A row as JobRow. JSON columns arrive as bytes from our pools (raw jsonb codec) or
    as str from a caller's own connection (asyncpg's default codec)."""
    values = {name: record[name] for name in JOB_COLUMNS}
    for name in _JSON_COLUMNS:
        if isinstance(values[name], str):
            values[name] = values[name].encode()
    return JobRow(**values)


def positional_job_row(record: Sequence[Any]) -> JobRow:
    """A row whose statement returns every column in JobRow's order, JSON as bytea (the
    claim: the hot path, about a third cheaper than by name)."""
    return JobRow(**dict(zip(JOB_COLUMNS, record, strict=True)))


class EnqueueResult(msgspec.Struct, frozen=True, kw_only=True):
    job: JobRow
    deduplicated: bool


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    """What a claimer holds: acks and renewals name it (fencing)."""

    job_id: int
    lease_id: int


class Completion(msgspec.Struct, frozen=True, kw_only=True):
    lease: Lease
    result: bytes | None = None  # JSON document


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    """A failed attempt. With `retry_in` the job is queued again after that many seconds,
    unless it has used all its attempts; without it the job fails for good."""

    lease: Lease
    error: str
    retry_in: float | None = None


class LeaseExtension(msgspec.Struct, frozen=True, kw_only=True):
    lease: Lease
    seconds: float


Outcome = Literal["queued", "running", "succeeded", "failed", "cancelled", "paused"]


class AckResult(msgspec.Struct, frozen=True, kw_only=True):
    """Which acks took effect (and the status they left), and which leases were lost."""

    applied: dict[int, str]
    lost: list[Lease]


class RenewResult(msgspec.Struct, frozen=True, kw_only=True):
    renewed: list[int]
    cancel_requested: list[int]
    lost: list[Lease]


class QueueCount(msgspec.Struct, frozen=True, kw_only=True):
    queue: str
    status: str
    count: int
    oldest_queued_age: float | None  # seconds since the oldest runnable job became due
