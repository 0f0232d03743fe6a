"""The worker loop: claim into free slots, run, hand outcomes to the ack writer, stop.

Around it, each in a module of its own and supervised: the ack writer (runner/acks.py),
lease renewal (runner/leases.py), LISTEN (runner/listening.py), rescue and pruning
(runner/maintenance.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskrunner.db import CLAIM_SESSION_SETTINGS, WORKER_COMMAND_TIMEOUT, connect, listen_target
from taskrunner.errors import DatabaseError, InvalidArguments
from taskrunner.queue import AckResult, JobQueue, JobRow, Lease
from taskrunner.runner.acks import MAX_BATCH, AckWriter, job_log_extra
from taskrunner.runner.codec import ArgumentsError
from taskrunner.runner.context import JobContext
from taskrunner.runner.executors import Executors
from taskrunner.runner.fencing import Fence
from taskrunner.runner.instruments import Run, instruments_of
from taskrunner.runner.leases import LeaseKeeper
from taskrunner.runner.limited_claims import LimitedClaims
from taskrunner.runner.listening import Notifications
from taskrunner.runner.maintenance import Maintenance
from taskrunner.runner.outcomes import Execution, Outcomes
from taskrunner.runner.prefetch import Prefetch
from taskrunner.runner.progress import start_progress_line
from taskrunner.runner.scheduler import Scheduler
from taskrunner.runner.shutdown import (
    SHUTDOWN_GRACE,
    hand_back,
    install_stop_signals,
    unless_forced,
    wind_down,
)
from taskrunner.runner.supervise import restart_delay, start_supervised
from taskrunner.runner.tasks import Task
from taskrunner.runner.unknown_tasks import UnknownTaskWatch

if TYPE_CHECKING:
    from taskrunner.runner.metrics import Metrics
    from taskrunner.runner.runner import TaskRunner

log = logging.getLogger("taskrunner")

__all__ = ["Execution", "Worker", "WorkerSettings", "job_log_extra"]

CLAIM_GRACE = 0.5  # a claim in flight when a stop is asked gets this long to return
CANCEL_WAIT = 0.5  # for background loops to end once cancelled


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
    # No claims while more outcomes than this wait to be written (None: twice the jobs
    # a worker may hold, concurrency plus claim_ahead, and at least one ack batch).
    max_unwritten: int | None = None
    metrics_port: int | None = None  # serve Prometheus metrics there (runner/metrics.py)
    # Jobs a claim may take beyond the free slots while short jobs have a backlog
    # (runner/prefetch.py; None: twice the concurrency, 0: never).
    claim_ahead: int | None = None


class Worker:
    """One worker: `concurrency` slots over the runner's registered tasks."""

    def __init__(self, runner: TaskRunner, settings: WorkerSettings) -> None:
        if settings.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.runner = runner
        self.settings = settings
        self.queue = runner.job_queue
        self.has_own_tasks = bool(runner.tasks)
        # The built-in tasks too (the cleanup task), so a schedule of them runs anywhere.
        self.tasks: dict[str, Task[..., Any]] = {**runner.builtin_tasks, **runner.tasks}
        self.task_names = sorted(self.tasks)
        self.leases = {name: task.lease for name, task in self.tasks.items()}
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # Every job this worker holds a lease of: those running and those claimed ahead
        # (held in self._prefetch, without a handle until a slot frees up).
        self.running: dict[int, Execution] = {}
        ahead = 2 * settings.concurrency if settings.claim_ahead is None else settings.claim_ahead
        self._prefetch = Prefetch(settings.concurrency, ahead)
        self.max_unwritten = settings.max_unwritten or max(
            MAX_BATCH, 2 * (settings.concurrency + ahead)
        )
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._force = asyncio.Event()
        self._claims_paused = False
        self._keeper: LeaseKeeper | None = None
        self._acks: AckWriter | None = None
        self._outcomes: Outcomes  # set by run()
        self._executors: Executors | None = None
        self._run_attempt: Run  # the executors' run, inside any instruments; set by run()
        self._metrics: Metrics | None = None
        self._claimer: JobQueue | None = None  # claims, on a connection of their own
        self._claim_task: asyncio.Task[None] | None = None
        self._fence: Fence | None = None
        self._limited = LimitedClaims(runner.schema, settings.queues, settings.poll_interval)
        self._unknown_tasks = UnknownTaskWatch(self.queue, self.task_names, settings.queues)
        # Behind a pooler in transaction mode without a direct connection: no LISTEN.
        listen_at = listen_target(runner.target, runner.listen_dsn)
        self.notifications = (
            Notifications(
                listen_at, runner.schema, on_job=self._on_job, on_cancel=self._cancel_running
            )
            if listen_at is not None
            else None
        )

    # ---- lifecycle -----------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop claiming and drain; a second request stops waiting for running jobs."""
        if self._stopping:
            log.warning("second stop request: cancelling running jobs")
            self._force.set()
        elif self._claim_task is not None:
            self._claim_task.get_loop().call_later(CLAIM_GRACE, self._abandon_claim)
        self._stopping = True
        self._wakeup.set()

    def _abandon_claim(self) -> None:
        """A claim still in flight CLAIM_GRACE after the stop request (the database does
        not answer) is given up: jobs it claimed return when their leases run out."""
        if self._claim_task is not None and not self._claim_task.done():
            log.warning("a claim did not return after the stop request; giving it up")
            self._claim_task.cancel()

    async def run(self) -> None:
        if not self.has_own_tasks:  # the built-in ones alone are no work
            raise InvalidArguments(
                None, "this runner has no registered tasks: nothing to work on", field="tasks"
            )
        loop = asyncio.get_running_loop()
        if self.settings.metrics_port is not None:  # first: a port in use fails the start
            from taskrunner.runner.metrics import Metrics

            self._metrics = Metrics(self.queue, self.settings.metrics_port)
            self._metrics.start()
        try:
            await self._run(loop)
        finally:
            if self._metrics is not None:
                await asyncio.to_thread(self._metrics.stop)

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        self._keeper = LeaseKeeper(
            self.runner.target,
            self.runner.schema,
            on_cancel_requested=self._cancel_running,
            on_lost=self._lease_lost,
            owner_loop=loop,
        )
        # Start-up waits on round trips more than on work: the renewal thread's
        # connection, the claim connection and the check for unknown tasks go at once.
        await asyncio.gather(
            asyncio.to_thread(self._keeper.start), self._open_claims(), self._unknown_tasks.check()
        )
        self._acks = AckWriter(
            self.runner.target, self.runner.schema, self._keeper, self._on_acks_written
        )
        self._acks.start()
        self._outcomes = Outcomes(self._acks, self._keeper)
        self._executors = Executors(
            self.settings.concurrency,
            self._keeper.extend_now,
            self.settings.process_pool_size,
            middleware=self.runner.middlewares,
            fence_of=self._keeper.fence_at,
            trace_carrier=self.runner._tracing.carrier if self.runner._tracing else None,
        )
        self._keeper.on_fence_moved = self._executors.move_fence
        instruments = instruments_of(self._metrics, self.runner._tracing)
        self._run_attempt = (
            instruments.around(self._executors.run) if instruments else self._executors.run
        )
        enqueue_instruments = self.runner._instruments
        if self._metrics is not None:  # counts the enqueues of this process meanwhile
            self.runner._instruments = instruments
        background: list[asyncio.Task[None]] = []
        signals: list[signal.Signals] = []
        self._fence = Fence(self._keeper, self._fenced)
        self._fence.start(loop)
        try:
            if any(task.executor == "process" for task in self.tasks.values()):
                await self._executors.prestart_processes()
            if self.settings.handle_signals:
                signals = install_stop_signals(loop, self.request_stop)
            background = Maintenance(
                self.queue,
                self._unknown_tasks,
                rescue_interval=self.settings.rescue_interval,
                prune_interval=self.settings.prune_interval,
                on_rescued=self._wakeup.set,
                count_rescued=self._metrics.count_rescued if self._metrics else None,
            ).start()
            if self.notifications is not None:
                background.append(start_supervised("listening", self.notifications.run))
            else:
                log.info(
                    "behind a pooler and no listen_dsn: no LISTEN, polling every %.1fs",
                    self.settings.poll_interval,
                )
            background.append(start_supervised("schedules", Scheduler(self.runner).run))
            progress = start_progress_line(self._outcomes.progress, self.owner, self.running)
            background.append(progress)
            log.info(
                "worker %s started: tasks %s, queues %s, concurrency %d",
                self.owner,
                ", ".join(self.task_names),
                ", ".join(self.settings.queues) if self.settings.queues else "all",
                self.settings.concurrency,
            )
            self._claim_task = asyncio.create_task(self._claim_loop(), name="taskrunner-claims")
            await asyncio.wait({self._claim_task})
            if not self._claim_task.cancelled() and self._claim_task.exception() is not None:
                raise self._claim_task.exception()  # type: ignore[misc]
        finally:
            # Cancelled loops end at once, but a query cancelled on a dead link may keep
            # its connection a while (the driver's cancel request goes unanswered).
            # They end during the shutdown, which waits for them only at its end.
            stopping = [*background, *filter(None, [self._claim_task])]
            for task in stopping:
                task.cancel()
            await self._shutdown()
            if stopping:
                await asyncio.wait(stopping, timeout=CANCEL_WAIT)
            for sig in signals:
                loop.remove_signal_handler(sig)
            self._fence.stop()
            if self.runner._instruments is instruments and self._metrics is not None:
                self.runner._instruments = enqueue_instruments
            log.info("worker %s stopped", self.owner)

    # ---- claiming ------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        failures = 0
        assert self._acks is not None
        while not self._stopping:
            self._wakeup.clear()
            free = self.settings.concurrency - len(self.running)  # held ones count
            # Never ahead while limited queues are served: their claims get free slots
            # only, and jobs claimed ahead would take those slots first.
            ahead = 0 if self._limited.active else self._prefetch.room()
            if free + ahead > 0 and self._acks.backlog > self.max_unwritten:
                free = ahead = self._pause_claims()
            elif self._claims_paused:
                self._claims_paused = False
                log.info("outcomes are written again: claiming resumes")
            claimed: list[JobRow] = []
            try:
                if free + ahead > 0:
                    claimer = await self._claim_queue()
                    sent = time.monotonic()  # the leases hold from before this (fencing)
                    # Limited queues first: their limits cap them, and the ordinary
                    # claim would otherwise take every slot while it has a backlog.
                    claimed = await self._limited.claim(
                        claimer.db,
                        self.task_names,
                        limit=free,
                        owner=self.owner,
                        lease=self.leases,
                    )
                    if self._limited.ordinary_due():
                        asked = free + ahead - len(claimed)
                        ordinary = await claimer.claim(
                            self.task_names,
                            limit=asked,
                            owner=self.owner,
                            lease=self.leases,
                            queues=self.settings.queues,
                        )
                        self._limited.ordinary_claimed(len(ordinary) < asked)
                        self._prefetch.claimed(asked, len(ordinary))
                        claimed += ordinary
                    self._start(claimed, sent)
                    free += ahead  # what was asked for, to tell a full claim
                if self.settings.stop_when_idle and not self.running and not claimed:
                    if await self._idle_now():
                        return
                    if self._limited.active:  # runnable, but waiting for a slot elsewhere
                        await self._sleep_unless_stopping(self.settings.poll_interval)
                    continue
                failures = 0
            except DatabaseError as exc:
                failures += 1
                delay = restart_delay(failures, first=0.2, ceiling=10.0)
                log.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
                await self._sleep_unless_stopping(delay)
                continue
            if free > 0 and len(claimed) == free:
                await asyncio.sleep(0)  # there may be more: claim again once slots free up
                continue
            await self._sleep_unless_stopping(self.settings.poll_interval)

    def _pause_claims(self) -> int:
        """Backpressure: no claims while the ack writer is behind (the database refuses
        or does not answer); finished work would only pile up and run again."""
        if not self._claims_paused:
            self._claims_paused = True
            assert self._acks is not None
            log.warning(
                "%d outcomes wait to be written: no claims until they are",
                self._acks.backlog,
            )
        return 0

    async def _open_claims(self) -> None:
        """Open the claim connection ahead, during start-up; if that fails, the claim
        loop tries again with its backoff."""
        with contextlib.suppress(DatabaseError):
            await self._claim_queue()

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

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    async def _idle_now(self) -> bool:
        """No job running, every outcome written, none of this worker's jobs left running
        in the database, and nothing runnable: the worker is idle."""
        assert self._acks is not None
        if self._acks.backlog and not await self._acks.wait_empty(self.settings.poll_interval):
            return False
        if self.running:
            return False
        if self._acks.given_up and await self._still_held(self._acks.given_up):
            await self._sleep_unless_stopping(self.settings.poll_interval)
            return False
        return not await self.queue.runnable_exists(self.task_names, self.settings.queues)

    async def _still_held(self, job_ids: set[int]) -> bool:
        """Whether jobs whose outcome could not be written still run under this worker
        (until their leases run out and they are rescued)."""
        rows = await self.queue.get_many(sorted(job_ids))
        held = {i for i, r in rows.items() if r.status == "running" and r.lease_owner == self.owner}
        job_ids.intersection_update(held)
        return bool(held)

    def _start(self, claimed: list[JobRow], sent: float) -> None:
        """Run the claimed jobs (claimed by a statement sent at `sent`); those beyond
        the free slots wait in claim order (runner/prefetch.py)."""
        assert self._keeper is not None
        held = []
        waiting = self._prefetch.held
        executing = len(self.running) - len(waiting)
        for job in claimed:
            task = self.tasks[job.task]
            previous = self.running.get(job.id)
            after = None
            if previous is not None and previous.handle is not None:
                # Our old lease expired and we claimed the job again: the new attempt
                # starts once the old one has really ended (a thread cannot be stopped).
                self._stop_lost(previous)
                after = previous.handle
            elif previous is not None:  # held, and its old lease lost meanwhile
                self._stop_lost(previous)
            execution = Execution(job, task, job.lease)
            self.running[job.id] = execution
            held.append((execution.lease, task.lease))
            if after is None and executing >= self.settings.concurrency:
                waiting.append(execution)
            else:
                executing += after is None
                execution.handle = asyncio.create_task(
                    self._run_job(execution, after), name=f"job-{job.id}"
                )
        self._keeper.hold_many(held, sent)

    def _start_held(self) -> None:
        """A slot is free: start the next job claimed ahead, if any."""
        execution = self._prefetch.take()
        if execution is None:
            return
        execution.handle = asyncio.create_task(
            self._run_job(execution), name=f"job-{execution.job.id}"
        )
        if not self._prefetch.held:
            self._wakeup.set()  # the last one: claim the next batch while these run

    def _take_back_held(self) -> tuple[list[Lease], list[int]]:
        """At shutdown: the jobs claimed ahead, never started, to hand back at once with
        the attempts they had (other workers take them while the running ones finish)."""
        held = list(self._prefetch.held)
        self._prefetch.held.clear()
        for execution in held:
            execution.stop_reason = "shutdown"
            if self.running.get(execution.job.id) is execution:
                del self.running[execution.job.id]
        leases = [execution.lease for execution in held]
        workflows = sorted({e.job.workflow_id for e in held if e.job.workflow_id is not None})
        if leases and self._keeper is not None:
            self._keeper.drop(leases)  # not renewed: if the hand-back fails, they run out
            log.info("handing back %d job(s) claimed ahead", len(leases))
        return leases, workflows

    def _drop_held(self, execution: Execution, reason: str) -> bool:
        """End a job claimed ahead before it started (cancel, lost lease, shutdown);
        whether it was one."""
        if not self._prefetch.remove(execution):
            return False
        execution.stop_reason = execution.stop_reason or reason
        if self.running.get(execution.job.id) is execution:
            del self.running[execution.job.id]
        self._outcomes.stopped(execution)
        return True

    # ---- running -------------------------------------------------------------------

    async def _run_job(self, execution: Execution, after: asyncio.Task[None] | None = None) -> None:
        """Run one attempt (once `after`, an earlier attempt of the job, has ended);
        whatever the handler raises, the attempt gets an outcome."""
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
        outcomes = self._outcomes
        try:
            if after is not None and not after.done():
                await asyncio.wait({after})
            execution.started = started = time.monotonic()
            result = await self._run_attempt(task, job, ctx)
            self._prefetch.ran(time.monotonic() - started)
        except asyncio.CancelledError as exc:
            if execution.stop_reason is None and not _being_cancelled():
                outcomes.failed(execution, exc, retryable=False)  # the handler's own
            else:
                outcomes.stopped(execution)
        except ArgumentsError as exc:
            outcomes.failed(execution, exc, retryable=False)
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: this attempt only
            outcomes.failed(execution, exc, retryable=True)
        else:
            outcomes.succeeded(execution, result)
        finally:
            # A superseded attempt (the job claimed again) hands its slot to the new one.
            current = self.running.get(job.id) is execution
            if current:
                del self.running[job.id]
            if current and self._prefetch.held and not self._stopping:
                self._start_held()
            elif len(self.running) == self.settings.concurrency - 1:
                self._wakeup.set()  # we were full: a slot is free to claim into
            if self._limited.ended(job.id):
                self._wakeup.set()  # a limited queue's slot is free

    def _on_job(self, queue_name: str) -> None:
        queues = self.settings.queues
        if queues is None or queue_name in queues:
            self._limited.ordinary_claimed(ran_dry=False)
            self._wakeup.set()

    def _cancel_running(self, job_id: int) -> None:
        execution = self.running.get(job_id)
        if execution is None or execution.stop_reason is not None:
            return
        if execution.handle is None:
            self._drop_held(execution, "cancel")
            return
        execution.stop_reason = "cancel"
        execution.handle.cancel()

    def _lease_lost(self, lease: Lease) -> None:
        execution = self.running.get(lease.job_id)
        if execution is not None and execution.lease == lease:
            self._stop_lost(execution)

    def _stop_lost(self, execution: Execution, why: str | None = None) -> None:
        if execution.stop_reason is not None:
            return
        log.warning(
            "job %s lost its lease (%s); %s",
            execution.job.id,
            why or "it expired and the job was claimed again",
            "stopping this attempt" if execution.handle else "it was claimed ahead: not run",
            extra=job_log_extra(execution.job),
        )
        if execution.handle is None:
            self._drop_held(execution, "lost")
            return
        execution.stop_reason = "lost"
        execution.handle.cancel()
        if self._metrics is not None:
            self._metrics.count_lease_lost()

    def _fenced(self, lease: Lease) -> None:
        """No renewal of this lease got through for most of its length (runner/fencing.py):
        stop its handler before the lease can run out and another worker take the job."""
        execution = self.running.get(lease.job_id)
        if execution is not None and execution.lease == lease:
            if self._acks is not None:  # until its lease runs out, the row is ours
                self._acks.given_up.add(lease.job_id)
            self._stop_lost(execution, "no renewal got through in time; it may run out")

    def _on_acks_written(self, result: AckResult) -> None:
        # A retry may be due now, claims may resume, or idleness is to be checked.
        wake = self._claims_paused or self.settings.stop_when_idle
        wake = self._limited.written(result) or wake  # a limited queue's slot is free
        if wake or "queued" in result.applied.values():
            self._wakeup.set()

    # ---- shutdown ------------------------------------------------------------------

    async def _shutdown(self) -> None:
        """Let running jobs finish (bounded), stop the rest, write the outcomes and hand
        back the rest (bounded, even with the database gone), close everything."""
        # Beside the wait for running jobs, so that it adds nothing to the shutdown's bound.
        held = asyncio.ensure_future(hand_back(self.queue, *self._take_back_held(), SHUTDOWN_GRACE))
        pending = [e.handle for e in self.running.values() if e.handle is not None]
        if pending:
            log.info(
                "waiting up to %.0fs for %d running job(s)",
                self.settings.shutdown_timeout,
                len(pending),
            )
            await unless_forced(asyncio.wait(pending), self.settings.shutdown_timeout, self._force)
        interrupted = [e for e in self.running.values() if e.handle is not None]
        for execution in interrupted:
            if execution.task.executor != "thread":  # threads cannot be interrupted
                execution.stop_reason = execution.stop_reason or "shutdown"
                assert execution.handle is not None
                execution.handle.cancel()
        if interrupted:
            if any(e.task.executor == "thread" for e in interrupted):
                log.warning("thread handlers cannot be interrupted; waiting for them to finish")
            handles = [e.handle for e in interrupted if e.handle is not None]
            if not await unless_forced(asyncio.wait(handles), None, self._force):
                ids = ", ".join(str(e.job.id) for e in self.running.values())
                log.warning("stopping without waiting for job(s) %s any longer", ids)
        await unless_forced(held, None, self._force)  # bounded by SHUTDOWN_GRACE itself
        await wind_down(
            queue=self.queue,
            acks=self._acks,
            to_release=self._outcomes.to_release if self._acks is not None else [],
            workflows=self._outcomes.to_release_workflows if self._acks is not None else [],
            keeper=self._keeper,
            executors=self._executors,
            claimer=self._claimer,
            force=self._force,
        )


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
