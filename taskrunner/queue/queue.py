"""JobQueue: the bare queue. One coroutine per verb, batch-first, SQL from sql/*.sql.

It stores JSON payloads and task names; it knows nothing of Python functions. Every ack
and renewal is fenced by the lease the caller holds. Driver errors are translated at
every verb (queue/errors.py), so nothing from asyncpg reaches the layers above; the
enqueue paths live in queue/enqueue.py.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from taskrunner.db.identifiers import validate_schema
from taskrunner.queue.enqueue import Enqueuer
from taskrunner.queue.errors import translate_errors
from taskrunner.queue.notify import cancel_channel, jobs_channel
from taskrunner.queue.records import (
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
    job_row,
    positional_job_row,
)
from taskrunner.queue.statements import statements_for

log = logging.getLogger("taskrunner.queue")

# A pool or one connection (asyncpg ships no types, so this is documentation).
Executor: TypeAlias = Any


class JobQueue:
    """The bare queue over one database (a pool or a single connection) and one schema."""

    def __init__(self, db: Executor, schema: str = "taskrunner") -> None:
        self.db = db
        self.schema = validate_schema(schema)
        self.sql = statements_for(schema)
        self.jobs_channel = jobs_channel(schema)
        self.cancel_channel = cancel_channel(schema)
        self._enqueuer = Enqueuer(self.sql, self.jobs_channel)

    # ---- enqueue (queue/enqueue.py) ------------------------------------------------

    async def enqueue(
        self,
        job: NewJob,
        *,
        connection: asyncpg.Connection | None = None,
        idempotency_ttl: float | None = None,
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
        idempotency_ttl: float | None = None,
    ) -> list[EnqueueResult]:
        """Insert jobs in one round trip, all or nothing, one result per job in order.

        A job whose (task, idempotency key) is taken by a job with the same fingerprint
        returns that job (deduplicated); a different fingerprint raises IdempotencyConflict
        and nothing of the batch is written. Keys of jobs finished more than the key
        lifetime ago are free again: the schema's (`idempotency_ttl` of its settings),
        unless `idempotency_ttl` (seconds) is given for this call.
        """
        return await self._enqueuer.enqueue_many(
            self.db, jobs, connection=connection, idempotency_ttl=idempotency_ttl
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
        run_at first, each under a fresh lease of its task's length (seconds). A job
        with no attempts left is failed instead (and logged), never handed out."""
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
        claimed = [positional_job_row(r) for r in rows if r[3] == "running"]
        if len(claimed) < len(rows):
            for r in rows:
                if r[3] != "running":
                    log.error(
                        "job %s failed without running: %s",
                        r[0],
                        r[17],
                        extra={"job_id": r[0], "task": r[1], "request_id": r[12]},
                    )
        claimed.sort(key=lambda j: (-j.priority, j.run_at, j.id))
        return claimed

    @translate_errors
    async def complete_many(
        self, completions: Sequence[Completion], *, workflows: Sequence[int] = ()
    ) -> AckResult:
        """Finish jobs as succeeded, with their results (a cancel asked too late to stop
        the handler changes nothing). `workflows`: the workflows of the steps among them,
        whose rows are locked first, in one order (`_ack`)."""
        if not completions:
            return AckResult(applied={}, lost=[])
        args: list[Any] = [
            [c.lease.job_id for c in completions],
            [c.lease.lease_id for c in completions],
            # as text: encoded in C by any jsonb codec, ours or the driver's default
            [c.result.decode() if c.result is not None else None for c in completions],
        ]
        rows = await self._ack(self.sql["complete_many"], args, workflows)
        return self._ack_result([c.lease for c in completions], rows)

    @translate_errors
    async def fail_many(
        self, failures: Sequence[Failure], *, workflows: Sequence[int] = ()
    ) -> AckResult:
        """End failed attempts: queued again after `retry_in` while attempts remain,
        otherwise failed for good. `workflows`: as for complete_many."""
        if not failures:
            return AckResult(applied={}, lost=[])
        args: list[Any] = [
            [f.lease.job_id for f in failures],
            [f.lease.lease_id for f in failures],
            [f.error for f in failures],
            [f.retry_in for f in failures],
        ]
        rows = await self._ack(self.sql["fail_many"], args, workflows)
        return self._ack_result([f.lease for f in failures], rows)

    @translate_errors
    async def release_many(
        self, leases: Sequence[Lease], *, workflows: Sequence[int] = ()
    ) -> AckResult:
        """Hand running jobs back to the queue (a worker shutting down). `workflows`: as
        for complete_many."""
        if not leases:
            return AckResult(applied={}, lost=[])
        args: list[Any] = [[lease.job_id for lease in leases], [lease.lease_id for lease in leases]]
        rows = await self._ack(self.sql["release_many"], args, workflows)
        return self._ack_result(list(leases), rows)

    async def _ack(self, statement: str, args: list[Any], workflows: Sequence[int]) -> list[Any]:
        """One ack statement; with steps of workflows in the batch, in a transaction that
        first locks their workflows in id order (sql/workflow_acks.sql)."""
        if not workflows:
            return await self.db.fetch(statement, *args)  # type: ignore[no-any-return]
        async with contextlib.AsyncExitStack() as stack:
            conn = self.db
            if isinstance(conn, asyncpg.Pool):
                conn = await stack.enter_async_context(conn.acquire())
            await stack.enter_async_context(conn.transaction())
            await conn.fetch(self.sql["lock_workflows"], sorted(set(workflows)))
            return await conn.fetch(statement, *args)  # type: ignore[no-any-return]
        raise AssertionError("unreachable")  # for mypy: the block returns or raises

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
        """The job, from the jobs table or else the archive (queue/cleanup.py)."""
        rows = await self.db.fetch(self.sql["get_jobs"], [job_id])
        if not rows:
            rows = await self.db.fetch(self.sql["get_archived_jobs"], [job_id])
        return job_row(rows[0]) if rows else None

    @translate_errors
    async def get_many(self, job_ids: Sequence[int]) -> dict[int, JobRow]:
        """The jobs found, by id; ids the jobs table lacks are looked up in the archive."""
        rows = await self.db.fetch(self.sql["get_jobs"], list(job_ids))
        found = {r["id"]: job_row(r) for r in rows}
        missing = [i for i in job_ids if i not in found]
        if missing:
            archived = await self.db.fetch(self.sql["get_archived_jobs"], missing)
            found.update((r["id"], job_row(r)) for r in archived)
        return found

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
        archived: bool = False,
    ) -> list[JobRow]:
        """Newest first; every filter is optional. `before_id` pages: pass the last id of
        the page before. `archived` lists the archive instead of the jobs table."""
        statement = self.sql["list_archived_jobs"] if archived else self.sql["list_jobs"]
        rows = await self.db.fetch(statement, status, queue, task, request_id, before_id, limit)
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
    async def ping(self) -> None:
        """One round trip: raises ConnectError when the connection is dead."""
        await self.db.fetchval(self.sql["ping"])

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
    async def delete_finished(
        self,
        *,
        older_than: float | None = None,
        limit: int | None = None,
        batch: int = 1_000,
        max_seconds: float = 30.0,
    ) -> int:
        """Delete jobs finished more than `older_than` seconds ago, or by default more
        than the schema's key lifetime ago (frees their keys); returns how many.

        Works in batches of `batch` rows, each a short transaction that skips rows
        locked by anything else, until none is left, `limit` rows are gone, or
        `max_seconds` have passed: it keeps pace with any finish rate without holding
        long locks or holding up claims.
        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        deadline = time.monotonic() + max_seconds
        total = 0
        while True:
            size = batch if limit is None else min(batch, limit - total)
            if size <= 0:
                return total
            count: int = await self.db.fetchval(self.sql["delete_finished"], older_than, size)
            total += count
            if count < size or time.monotonic() >= deadline:
                return total

    # ---- schema settings -----------------------------------------------------------

    @translate_errors
    async def idempotency_ttl(self) -> float:
        """The schema's key lifetime in seconds (also the retention of finished jobs)."""
        ttl: float = await self.db.fetchval(self.sql["get_idempotency_ttl"])
        return ttl

    @translate_errors
    async def set_idempotency_ttl(self, seconds: float) -> float | None:
        """Set the schema's key lifetime; returns the previous value if it changed."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"idempotency_ttl must be finite and not negative, not {seconds!r}")
        previous: float | None = await self.db.fetchval(self.sql["set_idempotency_ttl"], seconds)
        return previous
