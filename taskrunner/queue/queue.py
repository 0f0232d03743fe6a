"""JobQueue: the bare queue. One coroutine per verb, batch-first, SQL from sql/*.sql.

It stores JSON payloads and task names; it knows nothing of Python functions. Every ack
and renewal is fenced by the lease the caller holds. Driver errors are translated here,
so nothing from asyncpg reaches the layers above.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, ParamSpec, TypeAlias, TypeVar

import asyncpg
import msgspec

from taskrunner.db.identifiers import validate_schema
from taskrunner.errors import ConnectError, DatabaseError, IdempotencyConflict
from taskrunner.queue.notify import cancel_channel, jobs_channel
from taskrunner.queue.records import (
    JOB_COLUMNS,
    AckResult,
    Completion,
    EnqueueResult,
    Failure,
    JobRow,
    Lease,
    LeaseExtension,
    NewJob,
    QueueCount,
    RenewResult,
)
from taskrunner.queue.statements import statements_for

log = logging.getLogger("taskrunner.queue")

P = ParamSpec("P")
R = TypeVar("R")

# A pool or one connection (asyncpg ships no types, so this is documentation).
Executor: TypeAlias = Any
DEFAULT_IDEMPOTENCY_TTL = 24 * 3600.0
_MAX_ENQUEUE_ROUNDS = 20
_CONNECTION_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


def translate_errors(
    method: Callable[P, Awaitable[R]],
) -> Callable[P, Awaitable[R]]:
    """Turn driver errors into taskrunner errors at the queue's boundary."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except _CONNECTION_ERRORS as exc:
            raise ConnectError(f"lost the database connection: {exc}") from exc
        except (
            asyncpg.UndefinedTableError,
            asyncpg.UndefinedFunctionError,
            asyncpg.InvalidSchemaNameError,  # the schema itself does not exist yet
        ) as exc:
            queue = args[0]
            schema = getattr(queue, "schema", "?")
            raise DatabaseError(
                f"{exc} (is schema {schema!r} migrated? run `taskrunner migrate`)"
            ) from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseError(str(exc)) from exc

    return wrapper


_JSON_COLUMNS = ("args", "kwargs", "result")


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


class _InsertRow(msgspec.Struct):
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
    )


def default_fingerprint(job: NewJob) -> str:
    """Identity of a call when the caller gave none: the exact payload bytes."""
    return hashlib.sha256(job.args + b"\x00" + job.kwargs).hexdigest()


class JobQueue:
    """The bare queue over one database (a pool or a single connection) and one schema."""

    def __init__(self, db: Executor, schema: str = "taskrunner") -> None:
        self.db = db
        self.schema = validate_schema(schema)
        self.sql = statements_for(schema)
        self.jobs_channel = jobs_channel(schema)
        self.cancel_channel = cancel_channel(schema)

    # ---- enqueue -------------------------------------------------------------------

    async def enqueue(
        self,
        job: NewJob,
        *,
        connection: asyncpg.Connection | None = None,
        idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL,
    ) -> EnqueueResult:
        (result,) = await self.enqueue_many(
            [job], connection=connection, idempotency_ttl=idempotency_ttl
        )
        return result

    @translate_errors
    async def enqueue_many(
        self,
        jobs: Sequence[NewJob],
        *,
        connection: asyncpg.Connection | None = None,
        idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL,
    ) -> list[EnqueueResult]:
        """Insert jobs in one round trip, all or nothing, one result per job in order.

        A job whose (task, idempotency key) is taken by a job with the same fingerprint
        returns that job (deduplicated); a different fingerprint raises IdempotencyConflict
        and nothing of the batch is written. Keys of jobs finished more than
        `idempotency_ttl` seconds ago are free again.
        """
        if not jobs:
            return []
        if all(j.idempotency_key is None for j in jobs):
            return await self._insert_many(jobs, connection)
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
            return await run(connection if connection is not None else self.db)
        if connection is not None:
            async with connection.transaction():  # a savepoint inside the caller's transaction
                return await run(connection)
        if isinstance(self.db, asyncpg.Pool):
            async with self.db.acquire() as conn, conn.transaction():
                return await run(conn)
        async with self.db.transaction():
            return await run(self.db)

    async def _insert_many(
        self, jobs: Sequence[NewJob], connection: asyncpg.Connection | None
    ) -> list[EnqueueResult]:
        """No keys, no conflicts: one INSERT; the rows are rebuilt from what was sent plus
        what the database decided (id, run_at, created_at)."""
        db = connection if connection is not None else self.db
        first = jobs[0]
        if all(
            j.task == first.task
            and j.queue == first.queue
            and j.priority == first.priority
            and j.run_at == first.run_at
            and j.delay == first.delay
            and j.max_attempts == first.max_attempts
            and j.request_id == first.request_id
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
        ttl: float,
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
                elif row.fingerprint == fingerprints[index]:
                    settled[index] = EnqueueResult(job=row, deduplicated=True)
                else:
                    key = jobs[index].idempotency_key
                    assert key is not None
                    raise IdempotencyConflict(
                        jobs[index].task, key, row.id, index=index if len(jobs) > 1 else None
                    )
            if expired:
                await conn.execute(self.sql["release_expired_keys"], expired, ttl)
            if not retry:
                return settled
            todo = retry
        raise DatabaseError(
            f"could not settle idempotency keys after {_MAX_ENQUEUE_ROUNDS} rounds "
            "(is the caller's transaction REPEATABLE READ or SERIALIZABLE?)"
        )

    # ---- claim and acks ------------------------------------------------------------

    @translate_errors
    async def claim(
        self,
        tasks: Sequence[str],
        *,
        limit: int,
        owner: str,
        lease: float | Mapping[str, float] = 30.0,
        queues: Sequence[str] | None = None,
    ) -> list[JobRow]:
        """Claim up to `limit` runnable jobs of `tasks`, highest priority then oldest
        run_at first, each under a fresh lease of its task's length (seconds)."""
        if limit <= 0 or not tasks:
            return []
        task_list = list(tasks)
        if isinstance(lease, Mapping):
            leases = [float(lease.get(t, 30.0)) for t in task_list]
        else:
            leases = [float(lease)] * len(task_list)
        rows = await self.db.fetch(
            self.sql["claim_batch"],
            task_list,
            list(queues) if queues is not None else None,
            limit,
            leases,
            owner,
        )
        claimed = [positional_job_row(r) for r in rows]
        claimed.sort(key=lambda j: (-j.priority, j.run_at, j.id))
        return claimed

    @translate_errors
    async def complete_many(self, completions: Sequence[Completion]) -> AckResult:
        """Finish jobs as succeeded (or cancelled, if a cancel was asked meanwhile)."""
        if not completions:
            return AckResult(applied={}, lost=[])
        rows = await self.db.fetch(
            self.sql["complete_many"],
            [c.lease.job_id for c in completions],
            [c.lease.lease_id for c in completions],
            # as text: encoded in C by any jsonb codec, ours or the driver's default
            [c.result.decode() if c.result is not None else None for c in completions],
        )
        return self._ack_result([c.lease for c in completions], rows)

    @translate_errors
    async def fail_many(self, failures: Sequence[Failure]) -> AckResult:
        """End failed attempts: queued again after `retry_in` while attempts remain,
        otherwise failed for good."""
        if not failures:
            return AckResult(applied={}, lost=[])
        rows = await self.db.fetch(
            self.sql["fail_many"],
            [f.lease.job_id for f in failures],
            [f.lease.lease_id for f in failures],
            [f.error for f in failures],
            [f.retry_in for f in failures],
        )
        return self._ack_result([f.lease for f in failures], rows)

    @translate_errors
    async def release_many(self, leases: Sequence[Lease]) -> AckResult:
        """Hand running jobs back to the queue (a worker shutting down)."""
        if not leases:
            return AckResult(applied={}, lost=[])
        rows = await self.db.fetch(
            self.sql["release_many"],
            [lease.job_id for lease in leases],
            [lease.lease_id for lease in leases],
        )
        return self._ack_result(list(leases), rows)

    @translate_errors
    async def extend_leases(
        self, extensions: Sequence[LeaseExtension], *, connection: Executor | None = None
    ) -> RenewResult:
        """Renew many leases in one statement; report the ones no longer held."""
        if not extensions:
            return RenewResult(renewed=[], cancel_requested=[], lost=[])
        db = connection if connection is not None else self.db
        rows = await db.fetch(
            self.sql["extend_leases"],
            [e.lease.job_id for e in extensions],
            [e.lease.lease_id for e in extensions],
            [e.seconds for e in extensions],
        )
        renewed = [r["id"] for r in rows]
        held = set(renewed)
        lost = [e.lease for e in extensions if e.lease.job_id not in held]
        return RenewResult(
            renewed=renewed,
            cancel_requested=[r["id"] for r in rows if r["cancel_requested"]],
            lost=lost,
        )

    @staticmethod
    def _ack_result(leases: list[Lease], rows: Sequence[Mapping[str, Any]]) -> AckResult:
        """Acks that matched no row lost their lease; the caller, who knows the job,
        decides how to report them."""
        applied = {r["id"]: r["status"] for r in rows}
        lost = [lease for lease in leases if lease.job_id not in applied]
        return AckResult(applied=applied, lost=lost)

    # ---- admin ---------------------------------------------------------------------

    @translate_errors
    async def get(self, job_id: int) -> JobRow | None:
        rows = await self.db.fetch(self.sql["get_jobs"], [job_id])
        return job_row(rows[0]) if rows else None

    @translate_errors
    async def get_many(self, job_ids: Sequence[int]) -> dict[int, JobRow]:
        rows = await self.db.fetch(self.sql["get_jobs"], list(job_ids))
        return {r["id"]: job_row(r) for r in rows}

    @translate_errors
    async def list_jobs(
        self,
        *,
        status: str | None = None,
        queue: str | None = None,
        task: str | None = None,
        request_id: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[JobRow]:
        """Newest first; every filter is optional. `before_id` pages: pass the last id of
        the page before."""
        rows = await self.db.fetch(
            self.sql["list_jobs"], status, queue, task, request_id, before_id, limit
        )
        return [job_row(r) for r in rows]

    @translate_errors
    async def cancel(self, job_id: int) -> bool:
        """Queued/paused → cancelled; running → cancel asked (its worker is notified)."""
        return await self.db.fetchrow(self.sql["cancel"], job_id, self.cancel_channel) is not None

    @translate_errors
    async def pause(self, job_id: int) -> bool:
        return await self.db.fetchrow(self.sql["pause"], job_id) is not None

    @translate_errors
    async def resume(self, job_id: int) -> bool:
        return await self.db.fetchrow(self.sql["resume"], job_id, self.jobs_channel) is not None

    @translate_errors
    async def retry(self, job_id: int) -> bool:
        """Failed/cancelled → queued from attempt 0, runnable now."""
        return await self.db.fetchrow(self.sql["retry"], job_id, self.jobs_channel) is not None

    @translate_errors
    async def stats(self) -> list[QueueCount]:
        rows = await self.db.fetch(self.sql["stats"])
        return [
            QueueCount(
                queue=r["queue"],
                status=r["status"],
                count=r["count"],
                oldest_queued_age=r["oldest_queued_age"] if r["status"] == "queued" else None,
            )
            for r in rows
        ]

    @translate_errors
    async def count_queued(self, queues: Sequence[str] | None = None) -> int:
        count: int = await self.db.fetchval(
            self.sql["count_queued"], list(queues) if queues is not None else None
        )
        return count

    @translate_errors
    async def runnable_exists(
        self, tasks: Sequence[str], queues: Sequence[str] | None = None
    ) -> bool:
        exists: bool = await self.db.fetchval(
            self.sql["runnable_exists"], list(tasks), list(queues) if queues is not None else None
        )
        return exists

    @translate_errors
    async def unknown_queued_tasks(
        self, known: Sequence[str], queues: Sequence[str] | None = None, *, scan: int = 1000
    ) -> dict[str, int]:
        """Tasks not in `known` with due queued jobs among the first `scan` in claim order,
        and how many jobs each has there."""
        rows = await self.db.fetch(
            self.sql["unknown_queued_tasks"],
            list(known),
            list(queues) if queues is not None else None,
            scan,
        )
        return {r["task"]: r["jobs"] for r in rows}

    @translate_errors
    async def next_run_at(
        self, tasks: Sequence[str], queues: Sequence[str] | None = None
    ) -> datetime | None:
        when: datetime | None = await self.db.fetchval(
            self.sql["next_run_at"], list(tasks), list(queues) if queues is not None else None
        )
        return when

    @translate_errors
    async def clear(self, queues: Sequence[str] | None = None) -> int:
        """Delete every job (of `queues`); returns how many."""
        count: int = await self.db.fetchval(
            self.sql["clear"], list(queues) if queues is not None else None
        )
        return count

    # ---- maintenance ---------------------------------------------------------------

    @translate_errors
    async def rescue_expired(self, *, limit: int = 500) -> list[tuple[int, str]]:
        """Give jobs of dead workers back to the queue (or fail them after their last
        attempt); returns (job id, new status) pairs."""
        rows = await self.db.fetch(self.sql["rescue_expired"], limit)
        for r in rows:
            log.warning(
                "job %s lost its worker (lease expired); now %s",
                r["id"],
                r["status"],
                extra={"job_id": r["id"], "task": r["task"], "request_id": r["request_id"]},
            )
        return [(r["id"], r["status"]) for r in rows]

    @translate_errors
    async def delete_finished(self, *, older_than: float, limit: int = 10_000) -> int:
        """Delete jobs finished more than `older_than` seconds ago (frees their keys)."""
        count: int = await self.db.fetchval(self.sql["delete_finished"], older_than, limit)
        return count
