"""The worker loop: claim into free slots, run, hand outcomes to the ack writer, stop.

The worker keeps only its slots; around it, each in a module of its own and given what
it uses rather than the runner: its settings (runner/worker_settings.py), its start-up
and background loops (runner/worker_startup.py), one attempt and its outcome
(runner/attempts.py), stopping attempts on a cancel or a lost lease (runner/job_stops.py),
jobs claimed ahead (runner/prefetch.py), when it is idle (runner/idleness.py), the
shutdown (runner/shutdown.py), the ack writer (runner/acks.py), lease renewal
(runner/leases.py).
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
from typing import TYPE_CHECKING, Any

from taskrunner.db import listen_target
from taskrunner.errors import DatabaseError, InvalidArguments
from taskrunner.queue import AckResult, JobQueue, JobRow
from taskrunner.runner.acks import MAX_BATCH, AckWriter, job_log_extra
from taskrunner.runner.attempts import run_attempt
from taskrunner.runner.executors import Executors
from taskrunner.runner.fencing import Fence
from taskrunner.runner.idleness import idle_now
from taskrunner.runner.instruments import Run
from taskrunner.runner.job_stops import JobStops
from taskrunner.runner.leases import LeaseKeeper
from taskrunner.runner.limited_claims import LimitedClaims
from taskrunner.runner.listening import Notifications
from taskrunner.runner.outcomes import Execution, Outcomes
from taskrunner.runner.prefetch import Prefetch
from taskrunner.runner.scheduler import Scheduler
from taskrunner.runner.shutdown import install_stop_signals, shut_down
from taskrunner.runner.supervise import restart_delay
from taskrunner.runner.tasks import Task
from taskrunner.runner.unknown_tasks import UnknownTaskWatch
from taskrunner.runner.worker_settings import WorkerSettings
from taskrunner.runner.worker_startup import ClaimConnection, open_parts, start_background

if TYPE_CHECKING:
    from taskrunner.runner.metrics import Metrics
    from taskrunner.runner.runner import TaskRunner

log = logging.getLogger("taskrunner")

__all__ = ["Execution", "Worker", "WorkerSettings", "job_log_extra"]

CLAIM_GRACE = 0.5  # a claim in flight when a stop is asked gets this long to return
# For background loops to end once cancelled: longer than close_quickly's bound, so that a
# loop closing its connection (LISTEN's) is not abandoned half-way and its connection left
# for the garbage collector once the event loop ends.
CANCEL_WAIT = 1.5
CLAIM_RETRY_CEILING = 2.0  # seconds between claims while the database is unavailable


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
        self._stops = JobStops(self.running, self._drop_held)  # cancels, lost leases
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
        self._claims = ClaimConnection(runner.target, runner.schema)
        self._claim_task: asyncio.Task[None] | None = None
        self._fence: Fence | None = None
        self._limited = LimitedClaims(runner.schema, settings.queues, settings.poll_interval)
        self._unknown_tasks = UnknownTaskWatch(self.queue, self.task_names, settings.queues)
        # Behind a pooler in transaction mode without a direct connection: no LISTEN.
        listen_at = listen_target(runner.target, runner.listen_dsn)
        self.notifications = (
            Notifications(
                listen_at,
                runner.schema,
                on_job=self._on_job,
                on_cancel=self._stops.cancel,
                on_listening=self._on_listening,
            )
            if listen_at is not None
            else None
        )

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
            self._stops.metrics = self._metrics
        try:
            await self._run(loop)
        finally:
            if self._metrics is not None:
                await asyncio.to_thread(self._metrics.stop)

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        parts = await open_parts(
            target=self.runner.target,
            schema=self.runner.schema,
            settings=self.settings,
            claims=self._claims,
            unknown_tasks=self._unknown_tasks,
            on_cancel_requested=self._stops.cancel,
            on_lost=self._stops.lease_lost,
            on_acks_written=self._on_acks_written,
            middleware=self.runner.middlewares,
            metrics=self._metrics,
            tracing=self.runner._tracing,
            loop=loop,
        )
        self._keeper, self._acks, self._outcomes = parts.keeper, parts.acks, parts.outcomes
        self._executors, self._stops.acks = parts.executors, parts.acks
        self._run_attempt, instruments = parts.run, parts.instruments
        enqueue_instruments = self.runner._instruments
        if self._metrics is not None:  # counts the enqueues of this process meanwhile
            self.runner._instruments = instruments
        background: list[asyncio.Task[None]] = []
        signals: list[signal.Signals] = []
        self._fence = Fence(parts.keeper, self._stops.fenced)
        self._fence.start(loop)
        try:
            if any(task.executor == "process" for task in self.tasks.values()):
                await parts.executors.prestart_processes()
            if self.settings.handle_signals:
                signals = install_stop_signals(loop, self.request_stop)
            background = start_background(
                queue=self.queue,
                settings=self.settings,
                unknown_tasks=self._unknown_tasks,
                metrics=self._metrics,
                notifications=self.notifications,
                on_rescued=self._wakeup.set,
                run_schedules=Scheduler(self.runner).run,
                progress=self._outcomes.progress,
                owner=self.owner,
                running=self.running,
                task_names=self.task_names,
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
                    claimer = await self._claims.get()
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
                # A short ceiling: once the server is back (a restart takes seconds),
                # claiming resumes within CLAIM_RETRY_CEILING, not after a long backoff;
                # a try against a server that is down costs one bounded connection attempt.
                delay = restart_delay(failures, first=0.2, ceiling=CLAIM_RETRY_CEILING)
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

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    async def _idle_now(self) -> bool:
        assert self._acks is not None
        return await idle_now(
            queue=self.queue,
            acks=self._acks,
            running=self.running,
            owner=self.owner,
            task_names=self.task_names,
            queues=self.settings.queues,
            poll_interval=self.settings.poll_interval,
            sleep=self._sleep_unless_stopping,
        )

    def _start(self, claimed: list[JobRow], sent: float) -> None:
        """Run the claimed jobs (claimed by a statement sent at `sent`); those beyond
        the free slots wait in claim order (runner/prefetch.py)."""
        assert self._keeper is not None
        leases = self._prefetch.admit(
            claimed, self.running, self.tasks, self._stops.stop_lost, self._start_job
        )
        self._keeper.hold_many(leases, sent)

    def _start_job(self, execution: Execution, after: asyncio.Task[None] | None = None) -> None:
        execution.handle = asyncio.create_task(
            self._run_job(execution, after), name=f"job-{execution.job.id}"
        )

    def _start_held(self) -> None:
        """A slot is free: start the next job claimed ahead, if any."""
        execution = self._prefetch.take()
        if execution is None:
            return
        self._start_job(execution)
        if not self._prefetch.held:
            self._wakeup.set()  # the last one: claim the next batch while these run

    def _drop_held(self, execution: Execution, reason: str) -> bool:
        """End a job claimed ahead before it started (cancel, lost lease); whether it
        was one."""
        if not self._prefetch.drop(execution, reason, self.running):
            return False
        self._outcomes.stopped(execution)
        return True

    async def _run_job(self, execution: Execution, after: asyncio.Task[None] | None = None) -> None:
        """Run one attempt (runner/attempts.py), then free its slot for the next job."""
        job = execution.job
        assert self._keeper is not None
        try:
            await run_attempt(
                execution,
                after,
                run=self._run_attempt,
                extend=self._keeper.extend_now,
                outcomes=self._outcomes,
                ran=self._prefetch.ran,
            )
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

    def _on_listening(self) -> None:
        # What was notified before LISTEN was in place is lost: a job enqueued meanwhile
        # is claimed now, and a cancel of a running job comes with a renewal now rather
        # than up to a renewal interval (a third of the lease) later.
        self._wakeup.set()
        if self.running and self._keeper is not None:
            self._keeper.renew_soon()

    def _on_acks_written(self, result: AckResult) -> None:
        # A retry may be due now, claims may resume, or idleness is to be checked.
        wake = self._claims_paused or self.settings.stop_when_idle
        wake = self._limited.written(result) or wake  # a limited queue's slot is free
        if wake or "queued" in result.applied.values():
            self._wakeup.set()

    async def _shutdown(self) -> None:
        """Hand back the jobs claimed ahead, stop the running ones (runner/shutdown.py)."""
        await shut_down(
            queue=self.queue,
            running=self.running,
            held=self._prefetch.take_back(self.running),
            shutdown_timeout=self.settings.shutdown_timeout,
            force=self._force,
            acks=self._acks,
            outcomes=self._outcomes if self._acks is not None else None,
            keeper=self._keeper,
            executors=self._executors,
            claimer=self._claims.queue,
        )

    @property
    def _claimer(self) -> JobQueue | None:
        """The claim connection's queue, once opened."""
        return self._claims.queue
