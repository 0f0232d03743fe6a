"""The ack writer: outcomes of finished attempts, written in batches on a connection of
their own.

Group commit: one long-lived writer takes whatever is pending, writes it in one statement
per batch, and whatever finishes meanwhile goes in the next batch, so batches grow
exactly when the database is the bottleneck. It never stalls on one bad outcome:

- a batch the database refuses for a value it cannot store (DataRefused: a NUL
  character, a number out of range, a value too large) is split in halves until the bad
  outcome is alone; a refused result fails its job ("result could not be stored: ..."),
  a refused failure is written again without its retry and with its text spelled out;
- any other database error (a lost connection, a statement timeout) is retried a few
  times with backoff; if the database stays away the outcomes stay pending, the writer
  is restarted by its supervisor, and the worker stops claiming (`backlog`);
- at shutdown, `close` waits a bounded time; what could not be written is logged with
  the job ids, and those jobs run again once their leases run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import asyncpg
import tenacity

from taskrunner.db import (
    HOT_PATH_SESSION_SETTINGS,
    WORKER_COMMAND_TIMEOUT,
    ResolvedDsn,
    close_quickly,
    connect,
)
from taskrunner.errors import ConnectError, DatabaseError, DataRefused
from taskrunner.queue import AckResult, Completion, Failure, JobQueue, JobRow, Lease
from taskrunner.runner.failures import safe_str, shorten, storable
from taskrunner.runner.leases import LeaseKeeper
from taskrunner.runner.supervise import start_supervised

log = logging.getLogger("taskrunner")

MAX_BATCH = 200
TRIES = 4  # of one batch, while the database errors are not about its values
CANCEL_WAIT = 0.2
CLOSE_CONNECTION_TIMEOUT = 0.5

Ack: TypeAlias = Completion | Failure
# A pending outcome: the job (for log records), its ack, and whether the ack is already
# the stand-in for one the database refused.
Pending: TypeAlias = tuple[JobRow, Ack, bool]


def job_log_extra(job: JobRow) -> dict[str, Any]:
    return {"job_id": job.id, "task": job.task, "request_id": job.request_id}


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, DatabaseError) and not isinstance(exc, DataRefused)


class AckWriter:
    """Writes completions and failures for one worker; `backlog` counts those not yet
    written (pending or in flight)."""

    def __init__(
        self,
        target: ResolvedDsn,
        schema: str,
        keeper: LeaseKeeper,
        on_written: Callable[[AckResult], None],
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._target = target
        self._schema = schema
        self._keeper = keeper
        self._on_written = on_written
        self._max_batch = max_batch
        self._completions: list[Pending] = []
        self._failures: list[Pending] = []
        self._in_flight = 0
        self._ready = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._closing = False
        self._queue: JobQueue | None = None
        self._task: asyncio.Task[None] | None = None
        self.given_up: set[int] = set()  # job ids whose outcome was dropped (leases run out)

    # ---- adding (the hot path) --------------------------------------------------------

    def complete(self, job: JobRow, lease: Lease, result: bytes) -> None:
        self._completions.append((job, Completion(lease=lease, result=result), False))
        self._added()

    def fail(self, job: JobRow, lease: Lease, error: str, retry_in: float | None) -> None:
        self._failures.append((job, Failure(lease=lease, error=error, retry_in=retry_in), False))
        self._added()

    def _added(self) -> None:
        if not self._ready.is_set():
            self._ready.set()
            self._empty.clear()

    @property
    def backlog(self) -> int:
        """Outcomes not yet written."""
        return len(self._completions) + len(self._failures) + self._in_flight

    @property
    def connection(self) -> asyncpg.Connection | None:
        """The connection acks go through (None until the first write)."""
        return self._queue.db if self._queue is not None else None

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._task = start_supervised("ack writer", self._run)

    async def wait_empty(self, timeout: float) -> bool:
        """Wait until every outcome is written (or `timeout`); whether it is."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._empty.wait(), timeout)
        return self.backlog == 0

    async def close(self, timeout: float) -> None:
        """Write what is pending, for at most `timeout` seconds; log what was not."""
        self._closing = True
        self._ready.set()
        task = self._task
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=max(0.0, timeout))
            if not done:
                task.cancel()
                await asyncio.wait({task}, timeout=CANCEL_WAIT)
        left = self._completions + self._failures
        self._completions, self._failures = [], []
        if left:
            ids = sorted(job.id for job, _, _ in left)
            log.error(
                "could not write the outcomes of %d job(s) before shutting down: %s; their "
                "leases run out and they run again",
                len(ids),
                ", ".join(map(str, ids)),
                extra={"job_ids": ids},
            )
            self._keeper.drop([ack.lease for _, ack, _ in left])
        await self._close_connection()

    async def _close_connection(self) -> None:
        queue, self._queue = self._queue, None
        if queue is not None:
            await close_quickly(queue.db, CLOSE_CONNECTION_TIMEOUT)

    # ---- writing ---------------------------------------------------------------------

    async def _run(self) -> None:
        """The writer's loop (supervised: an error that outlives the retries restarts it,
        with the outcomes still pending)."""
        while True:
            if not self._completions and not self._failures:
                if self._in_flight == 0:
                    self._empty.set()
                if self._closing:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            for pending, write in (
                (self._completions, JobQueue.complete_many),
                (self._failures, JobQueue.fail_many),
            ):
                if pending:
                    batch = self._unfenced(pending[: self._max_batch])
                    del pending[: self._max_batch]
                    if batch:
                        await self._write(batch, write)

    def _unfenced(self, batch: list[Pending]) -> list[Pending]:
        """The batch without outcomes whose lease is past its fence time (no renewal got
        through for most of its length: the job may run elsewhere by now). Those are not
        sent; their jobs run again once their leases run out."""
        now = time.monotonic()
        if not self._keeper.any_due(now):
            return batch
        stale = self._keeper.expired([ack.lease for _, ack, _ in batch], now)
        if not stale:
            return batch
        gone = {lease.job_id for lease in stale}
        for job, _, _ in batch:
            if job.id in gone:
                log.warning(
                    "the outcome of job %s is not written: its lease may have run out "
                    "meanwhile (no renewal got through); the job runs again",
                    job.id,
                    extra=job_log_extra(job),
                )
        self.given_up.update(gone)
        self._keeper.drop(stale)
        return [item for item in batch if item[0].id not in gone]

    async def _write(
        self,
        batch: list[Pending],
        write: Callable[..., Awaitable[AckResult]],
    ) -> None:
        acks = [ack for _, ack, _ in batch]
        leases = [ack.lease for ack in acks]
        # Steps of workflows: their workflows' rows are locked first, in one order (two
        # batches holding steps of two workflows would otherwise deadlock).
        workflows = [job.workflow_id for job, _, _ in batch if job.workflow_id is not None]
        self._in_flight += len(batch)
        try:
            # From here on the acks may land at any moment: a renewal that no longer
            # finds their jobs running has not lost their leases.
            self._keeper.finishing(leases)
            result = await self._with_retries(write, acks, workflows)
        except DataRefused as exc:
            self._in_flight -= len(batch)
            if len(batch) == 1:
                self._refused(batch[0], exc)
            else:  # find the bad outcome; the rest lands
                half = len(batch) // 2
                await self._write(batch[:half], write)
                await self._write(batch[half:], write)
            return
        except BaseException:
            self._in_flight -= len(batch)
            pending = self._completions if isinstance(acks[0], Completion) else self._failures
            pending[:0] = batch  # nothing is dropped: written on the next round
            raise
        self._in_flight -= len(batch)
        self._written(batch, result)

    async def _with_retries(
        self,
        write: Callable[..., Awaitable[AckResult]],
        acks: list[Any],
        workflows: list[int],
    ) -> AckResult:
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(TRIES),
            wait=tenacity.wait_exponential(multiplier=0.1, max=2) + tenacity.wait_random(0, 0.1),
            retry=tenacity.retry_if_exception(_transient),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                queue = await self._ack_queue()
                try:
                    return await write(queue, acks, workflows=workflows)
                except ConnectError:
                    self._drop_connection()
                    raise
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def _ack_queue(self) -> JobQueue:
        if self._queue is None or self._queue.db.is_closed():
            conn = await connect(
                self._target,
                server_settings=HOT_PATH_SESSION_SETTINGS,
                raw_jsonb=False,
                command_timeout=WORKER_COMMAND_TIMEOUT,
            )
            self._queue = JobQueue(conn, self._schema)
        return self._queue

    def _drop_connection(self) -> None:
        """A lost (or unanswering) connection is not used again: the next try opens one."""
        queue, self._queue = self._queue, None
        if queue is not None:
            conn: asyncpg.Connection = queue.db
            conn.terminate()

    def _refused(self, item: Pending, exc: DataRefused) -> None:
        """The database refused this one outcome: record a stand-in it can store."""
        job, ack, stand_in = item
        reason = storable(safe_str(exc)).strip()
        extra = job_log_extra(job)
        if stand_in:
            log.error(
                "the outcome of job %s could not be stored (%s); its lease runs out and it "
                "runs again",
                job.id,
                reason,
                extra=extra,
            )
            self.given_up.add(job.id)
            self._keeper.drop([ack.lease])
            return
        if isinstance(ack, Completion):
            log.error(
                "the result of job %s could not be stored (%s); the job fails",
                job.id,
                reason,
                extra=extra,
            )
            error = f"result could not be stored: {reason}"
        else:
            log.error(
                "the failure of job %s could not be stored (%s); the job fails without retrying",
                job.id,
                reason,
                extra=extra,
            )
            error = f"error could not be stored: {reason}\n\nThe attempt failed with: "
            error += storable(ack.error)
        stand = Failure(lease=ack.lease, error=shorten(error), retry_in=None)
        self._failures.insert(0, (job, stand, True))
        self._ready.set()

    def _written(self, batch: list[Pending], result: AckResult) -> None:
        if result.lost:
            jobs = {job.id: job for job, _, _ in batch}
            for lease in result.lost:
                job = jobs[lease.job_id]
                log.warning(
                    "%s of job %s ignored: its lease expired and another worker took the job over",
                    "completion" if isinstance(batch[0][1], Completion) else "failure",
                    lease.job_id,
                    extra=job_log_extra(job),
                )
        self._keeper.drop([ack.lease for _, ack, _ in batch])
        self._on_written(result)
