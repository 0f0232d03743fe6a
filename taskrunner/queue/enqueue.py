"""The enqueue paths of the queue: keyless batches in one INSERT, keyed ones in rounds.

A batch without idempotency keys cannot conflict, so it is one INSERT (the fastest when
every job shares its options). A batch with keys settles each key in rounds: insert what
is free, return the visible holder of what is taken, and ask again for a key whose holder
committed after the statement's snapshot. Keys are inserted in one canonical order
(task, key) whatever the input order, so batches with overlapping keys never wait on each
other in a cycle (no deadlock); results come back in input order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg
import msgspec

from taskrunner.errors import DatabaseError, IdempotencyConflict
from taskrunner.queue.records import EnqueueResult, JobRow, NewJob, job_row

# A pool or one connection (asyncpg ships no types, so this is documentation).
Executor: TypeAlias = Any
_MAX_ENQUEUE_ROUNDS = 20
# Fingerprints of jobs written by the SQL enqueue (migration 0009): it cannot bind a call
# to a signature, so against such a holder "the same call" is equal args and kwargs.
SQL_FINGERPRINT_PREFIX = "sql:"


class _InsertRow(msgspec.Struct, omit_defaults=True):
    ord: int
    task: str
    queue: str
    args: msgspec.Raw
    kwargs: msgspec.Raw
    priority: int
    run_at: datetime | None
    delay: float
    max_attempts: int
    request_id: str | None
    trace_context: msgspec.Raw | None = None  # left out when None


_rows_encoder = msgspec.json.Encoder()


def _inserted_row(job: NewJob, job_id: int, run_at: datetime, created_at: datetime) -> JobRow:
    return JobRow(
        id=job_id,
        task=job.task,
        queue=job.queue,
        status="queued",
        args=job.args,
        kwargs=job.kwargs,
        priority=job.priority,
        run_at=run_at,
        attempts=0,
        max_attempts=job.max_attempts,
        idempotency_key=None,
        fingerprint=None,
        request_id=job.request_id,
        lease_id=None,
        lease_owner=None,
        lease_expires_at=None,
        cancel_requested=False,
        last_error=None,
        result=None,
        created_at=created_at,
        started_at=None,
        finished_at=None,
        trace_context=job.trace_context,
    )


def default_fingerprint(job: NewJob) -> str:
    """Identity of a call when the caller gave none: the exact payload bytes."""
    return hashlib.sha256(job.args + b"\x00" + job.kwargs).hexdigest()


class Enqueuer:
    """Inserts jobs for one schema (its statements and wake-up channel)."""

    def __init__(self, sql: Mapping[str, str], jobs_channel: str) -> None:
        self.sql = sql
        self.jobs_channel = jobs_channel

    async def enqueue_many(
        self,
        db: Executor,
        jobs: Sequence[NewJob],
        *,
        connection: asyncpg.Connection | None,
        idempotency_ttl: float | None,
    ) -> list[EnqueueResult]:
        """One result per job, in input order; all or nothing (see JobQueue.enqueue_many)."""
        if not jobs:
            return []
        if all(j.idempotency_key is None for j in jobs):
            return await self._insert_many(jobs, connection if connection is not None else db)
        fingerprints = [
            (j.fingerprint or default_fingerprint(j)) if j.idempotency_key is not None else None
            for j in jobs
        ]
        first_of_key, duplicate_of = self._dedupe_batch(jobs, fingerprints)
        unique = [i for i in range(len(jobs)) if i not in duplicate_of]
        needs_transaction = len(unique) > 1 and len(first_of_key) > 0

        async def run(conn: Executor) -> list[EnqueueResult]:
            settled = await self._enqueue_rounds(conn, jobs, fingerprints, unique, idempotency_ttl)
            for index, original in duplicate_of.items():
                settled[index] = EnqueueResult(job=settled[original].job, deduplicated=True)
            return [settled[i] for i in range(len(jobs))]

        if not needs_transaction:
            return await run(connection if connection is not None else db)
        if connection is not None:
            async with connection.transaction():  # a savepoint inside the caller's transaction
                return await run(connection)
        if isinstance(db, asyncpg.Pool):
            async with db.acquire() as conn, conn.transaction():
                return await run(conn)
        async with db.transaction():
            return await run(db)

    async def _insert_many(self, jobs: Sequence[NewJob], db: Executor) -> list[EnqueueResult]:
        """No keys, no conflicts: one INSERT; the rows are rebuilt from what was sent plus
        what the database decided (id, run_at, created_at)."""
        first = jobs[0]
        if all(
            j.task == first.task
            and j.queue == first.queue
            and j.priority == first.priority
            and j.run_at == first.run_at
            and j.delay == first.delay
            and j.max_attempts == first.max_attempts
            and j.request_id == first.request_id
            and j.trace_context == first.trace_context
            for j in jobs
        ):
            return await self._insert_uniform(jobs, db)
        document = _rows_encoder.encode(
            [
                _InsertRow(
                    ord=index,
                    task=j.task,
                    queue=j.queue,
                    args=msgspec.Raw(j.args),
                    kwargs=msgspec.Raw(j.kwargs),
                    priority=j.priority,
                    run_at=j.run_at,
                    delay=j.delay,
                    max_attempts=j.max_attempts,
                    request_id=j.request_id,
                    trace_context=None if j.trace_context is None else msgspec.Raw(j.trace_context),
                )
                for index, j in enumerate(jobs)
            ]
        )
        rows = await db.fetch(self.sql["insert_many"], document.decode(), self.jobs_channel)
        if len(rows) != len(jobs):  # cannot happen without ON CONFLICT; never guess
            raise DatabaseError(f"inserted {len(rows)} rows for {len(jobs)} jobs")
        rows = sorted(rows, key=lambda r: r["id"])  # ids are drawn in input order
        return [
            EnqueueResult(
                job=_inserted_row(job, row["id"], row["run_at"], row["created_at"]),
                deduplicated=False,
            )
            for job, row in zip(jobs, rows, strict=True)
        ]

    async def _insert_uniform(self, jobs: Sequence[NewJob], db: Executor) -> list[EnqueueResult]:
        """Keyless jobs that differ only in their arguments: one INSERT, one row back."""
        first = jobs[0]
        same_kwargs = all(j.kwargs == first.kwargs for j in jobs)
        ids, run_at, created_at, _ = await db.fetchrow(
            self.sql["insert_uniform"],
            first.task,
            first.queue,
            [j.args.decode() for j in jobs],
            None if same_kwargs else [j.kwargs.decode() for j in jobs],
            first.priority,
            first.run_at,
            first.delay,
            first.max_attempts,
            first.request_id,
            self.jobs_channel,
            first.kwargs.decode(),
            None if first.trace_context is None else first.trace_context.decode(),
        )
        if ids is None or len(ids) != len(jobs):  # cannot happen without ON CONFLICT
            raise DatabaseError(f"inserted {len(ids or ())} rows for {len(jobs)} jobs")
        # The rows differ only in id and payload: copy one row, not build each anew.
        template = _inserted_row(first, ids[0], run_at, created_at)
        replace = msgspec.structs.replace
        return [
            EnqueueResult(
                job=replace(template, id=job_id, args=job.args, kwargs=job.kwargs),
                deduplicated=False,
            )
            for job, job_id in zip(jobs, ids, strict=True)
        ]

    @staticmethod
    def _dedupe_batch(
        jobs: Sequence[NewJob], fingerprints: Sequence[str | None]
    ) -> tuple[dict[tuple[str, str], int], dict[int, int]]:
        """Within one batch, a repeated key is the same job, or a conflict."""
        first_of_key: dict[tuple[str, str], int] = {}
        duplicate_of: dict[int, int] = {}
        for index, job in enumerate(jobs):
            if job.idempotency_key is None:
                continue
            scope = (job.task, job.idempotency_key)
            first = first_of_key.setdefault(scope, index)
            if first == index:
                continue
            if fingerprints[first] != fingerprints[index]:
                raise IdempotencyConflict(job.task, job.idempotency_key, None, index=index)
            duplicate_of[index] = first
        return first_of_key, duplicate_of

    async def _enqueue_rounds(
        self,
        conn: Executor,
        jobs: Sequence[NewJob],
        fingerprints: Sequence[str | None],
        todo: list[int],
        ttl: float | None,
    ) -> dict[int, EnqueueResult]:
        settled: dict[int, EnqueueResult] = {}
        for _ in range(_MAX_ENQUEUE_ROUNDS):
            batch = [jobs[i] for i in todo]
            rows = await conn.fetch(
                self.sql["enqueue_many"],
                [j.task for j in batch],
                [j.queue for j in batch],
                [j.args.decode() for j in batch],
                [j.kwargs.decode() for j in batch],
                [j.priority for j in batch],
                [j.run_at for j in batch],
                [j.delay for j in batch],
                [j.max_attempts for j in batch],
                [j.idempotency_key for j in batch],
                [fingerprints[i] for i in todo],
                [j.request_id for j in batch],
                ttl,
                self.jobs_channel,
                [None if j.trace_context is None else j.trace_context.decode() for j in batch],
            )
            by_index = {todo[r["ord"] - 1]: r for r in rows}
            retry: list[int] = []
            expired: list[int] = []
            for index in todo:
                record = by_index.get(index)
                if record is None:  # the key's holder committed after our snapshot
                    retry.append(index)
                    continue
                row = job_row(record)
                if record["inserted"]:
                    settled[index] = EnqueueResult(job=row, deduplicated=False)
                elif record["key_expired"]:
                    expired.append(row.id)
                    retry.append(index)
                elif row.fingerprint == fingerprints[index] or (
                    row.fingerprint is not None
                    and row.fingerprint.startswith(SQL_FINGERPRINT_PREFIX)
                    and record["same_arguments"]
                ):
                    settled[index] = EnqueueResult(job=row, deduplicated=True)
                else:
                    key = jobs[index].idempotency_key
                    assert key is not None
                    raise IdempotencyConflict(
                        jobs[index].task, key, row.id, index=index if len(jobs) > 1 else None
                    )
            if expired:
                await conn.execute(self.sql["release_expired_keys"], sorted(expired), ttl)
            if not retry:
                return settled
            todo = retry
        raise DatabaseError(
            f"could not settle idempotency keys after {_MAX_ENQUEUE_ROUNDS} rounds "
            "(is the caller's transaction REPEATABLE READ or SERIALIZABLE?)"
        )
