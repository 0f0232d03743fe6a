"""The worker loop: claim into free slots, run, ack in batches, renew, shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import traceback
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import tenacity

from taskrunner.db import (
    CLAIM_SESSION_SETTINGS,
    HOT_PATH_SESSION_SETTINGS,
    WORKER_COMMAND_TIMEOUT,
    WORKER_SESSION_SETTINGS,
    connect,
    listen_target,
)
from taskrunner.errors import DatabaseError
from taskrunner.queue import AckResult, Completion, Failure, JobQueue, JobRow, Lease, Listener
from taskrunner.runner.buffers import BatchBuffer
from taskrunner.runner.codec import ArgumentsError
from taskrunner.runner.context import JobContext
from taskrunner.runner.executors import Executors
from taskrunner.runner.leases import LeaseKeeper
from taskrunner.runner.scheduler import Scheduler
from taskrunner.runner.tasks import Task
from taskrunner.runner.unknown_tasks import UnknownTaskWatch

if TYPE_CHECKING:
    from taskrunner.runner.runner import TaskRunner

log = logging.getLogger("taskrunner")
AckT = TypeVar("AckT", Completion, Failure)
_MAX_ERROR_LENGTH = 4000


def job_log_extra(job: JobRow) -> dict[str, Any]:
    return {"job_id": job.id, "task": job.task, "request_id": job.request_id}


@dataclass(slots=True)
class Execution:
    job: JobRow
    task: Task[..., Any]
    lease: Lease
    handle: asyncio.Task[None] | None = None
    stop_reason: str | None = None  # "cancel", "shutdown" or "lost"


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    queues: tuple[str, ...] | None
    concurrency: int
    stop_when_idle: bool
    shutdown_timeout: float
    poll_interval: float = 1.0
    rescue_interval: float = 2.0
    prune_interval: float = 60.0
    process_pool_size: int | None = None
    handle_signals: bool = True


class Worker:
    """One worker: `concurrency` slots over the runner's registered tasks."""

    def __init__(self, runner: TaskRunner, settings: WorkerSettings) -> None:
        if settings.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.runner = runner
        self.settings = settings
        self.queue = runner.job_queue
        self.tasks: dict[str, Task[..., Any]] = dict(runner.tasks)
        self.task_names = sorted(self.tasks)
        self.leases = {name: task.lease for name, task in self.tasks.items()}
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.running: dict[int, Execution] = {}
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._force = asyncio.Event()
        self._to_release: list[Lease] = []
        self._acking: dict[int, JobRow] = {}  # ack buffered, not yet written
        self._completions: BatchBuffer[Completion] = BatchBuffer(self._write_completions)
        self._failures: BatchBuffer[Failure] = BatchBuffer(self._write_failures)
        self._keeper: LeaseKeeper | None = None
        self._executors: Executors | None = None
        self._listener: Listener | None = None
        self._polls_only = False  # behind a pooler without a direct LISTEN connection
        self._claimer: JobQueue | None = None  # claims, on a connection of their own
        self._acker: JobQueue | None = None  # acks, likewise
        self._ack_lock = asyncio.Lock()  # completions and failures share that connection
        self._unknown_tasks = UnknownTaskWatch(self.queue, self.task_names, settings.queues)

    # ---- lifecycle -----------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop claiming and drain; a second request stops waiting for running jobs."""
        if self._stopping:
            log.warning("second stop request: cancelling running jobs")
            self._force.set()
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        if not self.task_names:
            raise ValueError("this runner has no registered tasks: nothing to work on")
        loop = asyncio.get_running_loop()
        self._keeper = LeaseKeeper(
            self.runner.target,
            self.runner.schema,
            on_cancel_requested=self._cancel_running,
            on_lost=self._lease_lost,
            owner_loop=loop,
        )
        await asyncio.to_thread(self._keeper.start)
        self._executors = Executors(
            self.settings.concurrency,
            self._keeper.extend_now,
            self.settings.process_pool_size,
            middleware=self.runner.middlewares,
        )
        if any(task.executor == "process" for task in self.tasks.values()):
            await self._executors.prestart_processes()
        signals = self._install_signal_handlers(loop)
        maintenance = asyncio.create_task(self._maintenance_loop(), name="taskrunner-maintenance")
        scheduler = Scheduler.start(self.runner)
        log.info(
            "worker %s started: tasks %s, queues %s, concurrency %d",
            self.owner,
            ", ".join(self.task_names),
            ", ".join(self.settings.queues) if self.settings.queues else "all",
            self.settings.concurrency,
        )
        try:
            await self._unknown_tasks.check()
            await self._listen()
            await self._claim_loop()
        finally:
            await scheduler.stop()
            maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await maintenance
            await self._shutdown()
            for sig in signals:
                loop.remove_signal_handler(sig)
            log.info("worker %s stopped", self.owner)

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> list[signal.Signals]:
        if (
            not self.settings.handle_signals
            or threading.current_thread() is not threading.main_thread()
        ):
            return []
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError):  # not on this platform or loop
                continue
            installed.append(sig)
        return installed

    # ---- claiming ------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        failures = 0
        backoff = tenacity.wait_exponential(multiplier=0.2, max=10) + tenacity.wait_random(0, 0.2)
        while not self._stopping:
            self._wakeup.clear()
            free = self.settings.concurrency - len(self.running)
            claimed: list[JobRow] = []
            try:
                if free > 0:
                    claimer = await self._claim_queue()
                    claimed = await claimer.claim(
                        self.task_names,
                        limit=free,
                        owner=self.owner,
                        lease=self.leases,
                        queues=self.settings.queues,
                    )
                    self._start(claimed)
                if self.settings.stop_when_idle and not self.running and not claimed:
                    if await self._idle_now():
                        return
                    continue
                failures = 0
            except DatabaseError as exc:
                failures += 1
                delay = _backoff_delay(backoff, failures)
                log.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
                await self._sleep_unless_stopping(delay)
                continue
            if free > 0 and len(claimed) == free:
                await asyncio.sleep(0)  # there may be more: claim again once slots free up
                continue
            await self._sleep_unless_stopping(self.settings.poll_interval)

    async def _claim_queue(self) -> JobQueue:
        """Claims go through a connection of their own, set up for the claim plan, and
        without a pool round of acquire and release per claim."""
        if self._claimer is None or self._claimer.db.is_closed():
            conn = await connect(
                self.runner.target,
                server_settings=CLAIM_SESSION_SETTINGS,
                raw_jsonb=False,
                command_timeout=WORKER_COMMAND_TIMEOUT,
            )
            self._claimer = JobQueue(conn, self.runner.schema)
        return self._claimer

    async def _ack_queue(self) -> JobQueue:
        """Acks go through a connection of their own too; callers hold `_ack_lock`."""
        if self._acker is None or self._acker.db.is_closed():
            conn = await connect(
                self.runner.target,
                server_settings=HOT_PATH_SESSION_SETTINGS,
                raw_jsonb=False,
                command_timeout=WORKER_COMMAND_TIMEOUT,
            )
            self._acker = JobQueue(conn, self.runner.schema)
        return self._acker

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    async def _idle_now(self) -> bool:
        """No job running, every ack written, and nothing runnable: the worker is idle."""
        await self._completions.flush()
        await self._failures.flush()
        if self.running:
            return False
        return not await self.queue.runnable_exists(self.task_names, self.settings.queues)

    def _start(self, claimed: list[JobRow]) -> None:
        assert self._keeper is not None
        held = []
        for job in claimed:
            task = self.tasks[job.task]
            previous = self.running.get(job.id)
            if previous is not None:  # our old lease expired and we claimed the job again
                self._stop_lost(previous)
            execution = Execution(job, task, job.lease)
            self.running[job.id] = execution
            held.append((execution.lease, task.lease))
            execution.handle = asyncio.create_task(self._run_job(execution), name=f"job-{job.id}")
        self._keeper.hold_many(held)

    # ---- running -------------------------------------------------------------------

    async def _run_job(self, execution: Execution) -> None:
        job, task = execution.job, execution.task
        assert self._keeper is not None
        assert self._executors is not None
        ctx = JobContext(
            job_id=job.id,
            task=job.task,
            queue=job.queue,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            request_id=job.request_id,
            _extend=self._keeper.extend_now,
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "job %s started (attempt %d of %d)",
                job.id,
                job.attempts,
                job.max_attempts,
                extra=job_log_extra(job),
            )
        try:
            result = await self._executors.run(task, job, ctx)
        except asyncio.CancelledError:
            self._after_stop(execution)
        except ArgumentsError as exc:
            self._fail(execution, exc, retry_in=None)
        except Exception as exc:
            self._fail(execution, exc, retry_in=task.retry.delay_after(exc, job.attempts))
        else:
            if execution.stop_reason == "lost":
                self._keeper.drop((execution.lease,))
            else:
                self._acking[job.id] = job
                self._completions.add(Completion(lease=execution.lease, result=result))
        finally:
            if self.running.get(job.id) is execution:
                del self.running[job.id]
            if len(self.running) == self.settings.concurrency - 1:
                self._wakeup.set()  # we were full: a slot is free to claim into

    def _fail(self, execution: Execution, exc: Exception, *, retry_in: float | None) -> None:
        job = execution.job
        if execution.stop_reason == "lost":
            assert self._keeper is not None
            self._keeper.drop((execution.lease,))
            return
        detail = "".join(traceback.format_exception(exc))
        error = f"{type(exc).__name__}: {exc}\n\n{detail}"
        if len(error) > _MAX_ERROR_LENGTH:
            error = error[: _MAX_ERROR_LENGTH // 2] + "\n...\n" + error[-_MAX_ERROR_LENGTH // 2 :]
        will_retry = retry_in is not None and job.attempts < job.max_attempts
        log.log(
            logging.WARNING if will_retry else logging.ERROR,
            "job %s attempt %d of %d failed: %s: %s%s",
            job.id,
            job.attempts,
            job.max_attempts,
            type(exc).__name__,
            exc,
            f"; retrying in {retry_in:.1f}s" if will_retry and retry_in is not None else "",
            extra=job_log_extra(job),
        )
        self._acking[job.id] = job
        self._failures.add(Failure(lease=execution.lease, error=error, retry_in=retry_in))

    def _after_stop(self, execution: Execution) -> None:
        job = execution.job
        assert self._keeper is not None
        if execution.stop_reason == "cancel":
            log.info("job %s cancelled while running", job.id, extra=job_log_extra(job))
            self._acking[job.id] = job
            self._failures.add(Failure(lease=execution.lease, error="cancelled while running"))
        elif execution.stop_reason == "lost":
            self._keeper.drop((execution.lease,))
        else:
            log.info("job %s handed back to the queue", job.id, extra=job_log_extra(job))
            self._to_release.append(execution.lease)

    def _cancel_running(self, job_id: int) -> None:
        execution = self.running.get(job_id)
        if execution is None or execution.stop_reason is not None or execution.handle is None:
            return
        execution.stop_reason = "cancel"
        execution.handle.cancel()

    def _lease_lost(self, lease: Lease) -> None:
        execution = self.running.get(lease.job_id)
        if execution is not None and execution.lease == lease:
            self._stop_lost(execution)

    def _stop_lost(self, execution: Execution) -> None:
        if execution.stop_reason is not None or execution.handle is None:
            return
        log.warning(
            "job %s lost its lease (it expired and the job was claimed again); stopping "
            "this attempt",
            execution.job.id,
            extra=job_log_extra(execution.job),
        )
        execution.stop_reason = "lost"
        execution.handle.cancel()

    # ---- acks ----------------------------------------------------------------------

    async def _write_completions(self, batch: list[Completion]) -> None:
        await self._write_acks("completion", batch, JobQueue.complete_many)

    async def _write_failures(self, batch: list[Failure]) -> None:
        await self._write_acks("failure", batch, JobQueue.fail_many)

    async def _write_acks(
        self,
        kind: str,
        batch: list[AckT],
        write: Callable[[JobQueue, Sequence[AckT]], Awaitable[AckResult]],
    ) -> None:
        leases = [ack.lease for ack in batch]
        assert self._keeper is not None
        async with self._ack_lock:
            # From here on the acks may land at any moment: a renewal that no longer
            # finds their jobs running has not lost their leases.
            self._keeper.finishing(leases)
            result = await write(await self._ack_queue(), batch)
        self._acked(kind, leases, result)

    def _acked(self, kind: str, leases: Sequence[Lease], result: AckResult) -> None:
        assert self._keeper is not None
        for lease in result.lost:
            job = self._acking.get(lease.job_id)
            log.warning(
                "%s of job %s ignored: its lease expired and another worker took the job over",
                kind,
                lease.job_id,
                extra=job_log_extra(job) if job is not None else {"job_id": lease.job_id},
            )
        acking = self._acking
        for lease in leases:
            acked = acking.get(lease.job_id)
            if acked is not None and acked.lease_id == lease.lease_id:
                del acking[lease.job_id]
        self._keeper.drop(leases)
        if self.settings.stop_when_idle or "queued" in result.applied.values():
            self._wakeup.set()  # a retry may be due now, or idleness is to be checked

    # ---- notifications and maintenance --------------------------------------------

    async def _listen(self) -> None:
        """LISTEN on a connection of its own; polling covers any gap while it is down."""
        target = listen_target(self.runner.target, self.runner.listen_dsn)
        if target is None:
            if not self._polls_only:
                self._polls_only = True
                log.info(
                    "behind a pooler and no listen_dsn: no LISTEN, polling every %.1fs",
                    self.settings.poll_interval,
                )
            return
        try:
            conn = await connect(
                target,
                server_settings=WORKER_SESSION_SETTINGS,
                command_timeout=WORKER_COMMAND_TIMEOUT,
            )
        except DatabaseError as exc:
            log.warning("cannot LISTEN (%s); polling every %.1fs", exc, self.settings.poll_interval)
            return
        queues = self.settings.queues

        def on_job(queue_name: str) -> None:
            if queues is None or queue_name in queues:
                self._wakeup.set()

        def on_cancel(payload: str) -> None:
            with contextlib.suppress(ValueError):
                self._cancel_running(int(payload))

        self._listener = Listener(
            conn, {self.queue.jobs_channel: on_job, self.queue.cancel_channel: on_cancel}
        )
        await self._listener.start()

    async def _maintenance_loop(self) -> None:
        """Rescue jobs of dead workers, prune finished jobs past retention, re-LISTEN."""
        loop = asyncio.get_running_loop()
        next_prune = loop.time()
        while True:
            await asyncio.sleep(self.settings.rescue_interval)
            try:
                rescued = await self.queue.rescue_expired()
                if any(status == "queued" for _, status in rescued):
                    self._wakeup.set()
                if loop.time() >= next_prune:
                    next_prune = loop.time() + self.settings.prune_interval
                    await self.queue.delete_finished()  # by the schema's key lifetime
                if self._listener is None or self._listener.conn.is_closed():
                    await self._listen()
                await self._unknown_tasks.check_if_due()
            except DatabaseError as exc:
                log.warning("maintenance skipped: %s", exc)

    # ---- shutdown ------------------------------------------------------------------

    async def _shutdown(self) -> None:
        """Let running jobs finish (bounded), stop the rest, write every ack, hand back."""
        pending = [e.handle for e in self.running.values() if e.handle is not None]
        if pending:
            log.info(
                "waiting up to %.0fs for %d running job(s)",
                self.settings.shutdown_timeout,
                len(pending),
            )
            everything: asyncio.Future[Any] = asyncio.gather(*pending, return_exceptions=True)
            force: asyncio.Future[Any] = asyncio.create_task(self._force.wait())
            await asyncio.wait(
                {everything, force},
                timeout=self.settings.shutdown_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            force.cancel()
        interrupted = [e for e in self.running.values() if e.handle is not None]
        for execution in interrupted:
            if execution.task.executor != "thread":  # threads cannot be interrupted
                execution.stop_reason = execution.stop_reason or "shutdown"
                assert execution.handle is not None
                execution.handle.cancel()
        if interrupted:
            if any(e.task.executor == "thread" for e in interrupted):
                log.warning("thread handlers cannot be interrupted; waiting for them to finish")
            await asyncio.wait([e.handle for e in interrupted if e.handle is not None])
        await self._completions.close()
        await self._failures.close()
        if self._to_release:
            try:
                await self.queue.release_many(self._to_release)
            except DatabaseError as exc:
                log.warning(
                    "could not hand %d job(s) back (%s); their leases will expire",
                    len(self._to_release),
                    exc,
                )
        # Every ack is written: what is left to close is independent, so close it at once.
        closing: list[Awaitable[Any]] = []
        if self._keeper is not None:
            closing.append(asyncio.to_thread(self._keeper.stop))
        if self._listener is not None:
            closing.append(self._close_listener(self._listener))
        if self._executors is not None:
            closing.append(self._executors.close())
        for own in (self._claimer, self._acker):
            if own is not None and not own.db.is_closed():
                closing.append(own.db.close())
        for outcome in await asyncio.gather(*closing, return_exceptions=True):
            if isinstance(outcome, Exception):  # each closes whatever the others did
                log.warning("while shutting down: %s: %s", type(outcome).__name__, outcome)

    @staticmethod
    async def _close_listener(listener: Listener) -> None:
        await listener.stop()
        await listener.conn.close()


def _backoff_delay(wait: Any, attempt: int) -> float:
    state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return float(wait(state))
