"""Lease renewal from a thread of its own, with its own event loop and connection.

An async handler that blocks the worker's event loop must not lose its job: renewal
therefore never waits for that loop. One statement per interval renews every lease the
worker holds, each by its own length.

Self-fencing: for every lease the keeper knows until when it surely holds, by this
machine's monotonic clock: from the moment the claim or the last renewal that succeeded
was sent, plus the lease's length (the database counts from later). A handler must be
stopped before that, whatever the database or the network do meanwhile: `due` names
the leases whose fence time (`fence_margin` before) has come, and the worker stops their
handlers; `expired` keeps their outcomes from being sent. A renewal has a bound of its
own (`renew_timeout`): on a half-open connection it is given up, and the connection with
it, instead of waiting for the command timeout while the leases run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future

from taskrunner.db import HOT_PATH_SESSION_SETTINGS, WORKER_COMMAND_TIMEOUT, ResolvedDsn, connect
from taskrunner.queue import JobQueue, Lease, LeaseExtension
from taskrunner.runner.supervise import restart_delay

log = logging.getLogger("taskrunner")

FENCE_MARGIN_MAX = 5.0


def fence_margin(seconds: float) -> float:
    """How long before its lease may run out a handler is stopped: a quarter of the
    lease, at most FENCE_MARGIN_MAX (time for the stop to act, and for clock drift)."""
    return min(seconds / 4, FENCE_MARGIN_MAX)


def retry_delay(failures: int, interval: float) -> float:
    """Seconds before a renewal that failed is tried again (`failures` in a row): from a
    tenth of a second, doubling, at most the renewal interval and one second."""
    return restart_delay(failures, first=0.1, ceiling=min(1.0, interval))


def renew_timeout(interval: float) -> float:
    """How long one renewal may take before it is given up: one renewal interval (at
    least one second, at most the worker's command timeout)."""
    return min(WORKER_COMMAND_TIMEOUT, max(1.0, interval))


class LeaseKeeper:
    """Holds the leases of running jobs and renews them until they are dropped."""

    def __init__(
        self,
        target: ResolvedDsn,
        schema: str,
        *,
        on_cancel_requested: Callable[[int], None],
        on_lost: Callable[[Lease], None],
        owner_loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._target = target
        self._schema = schema
        self._on_cancel_requested = on_cancel_requested
        self._on_lost = on_lost
        self._owner_loop = owner_loop
        self._held: dict[int, tuple[Lease, float]] = {}
        self._fence_at: dict[int, float] = {}  # job id -> monotonic time to stop its handler
        # No fence time is earlier (one may be later: dropped leases are not taken out), so
        # that the checks of the hot path cost nothing while renewals get through.
        self._earliest_fence = float("inf")
        self._finishing: set[int] = set()  # ack buffered: a row no longer running is no loss
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._thread_main, name="taskrunner-leases", daemon=True
        )
        self._queue: JobQueue | None = None
        self._renew_lock: asyncio.Lock | None = None
        self._planned_interval = float("inf")
        self._renew_asked = False  # renew_soon(): renew before the interval is over
        # Told of every fence time a renewal moves (job id, time), from the renewal thread.
        self.on_fence_moved: Callable[[int, float], None] | None = None

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(15)

    def hold_many(self, leases: Sequence[tuple[Lease, float]], since: float) -> None:
        """Renew these leases (lease, seconds) from now on; one lock for a claimed batch.
        `since` is when their claim was sent (time.monotonic()): they hold until then
        plus their length."""
        shortest = float("inf")
        with self._lock:
            for lease, seconds in leases:
                self._held[lease.job_id] = (lease, seconds)
                fence_at = since + seconds - fence_margin(seconds)
                self._fence_at[lease.job_id] = fence_at
                self._earliest_fence = min(self._earliest_fence, fence_at)
                self._finishing.discard(lease.job_id)
                shortest = min(shortest, seconds)
        if shortest / 3 < self._planned_interval:
            self._poke()  # a shorter lease than planned for: plan the next renewal anew

    def finishing(self, leases: Iterable[Lease]) -> None:
        """These jobs' acks are on their way: keep renewing until `drop`, but if a row
        stops matching meanwhile, that is the ack landing, not a lost lease."""
        with self._lock:
            for lease in leases:
                if self._holds(lease):
                    self._finishing.add(lease.job_id)

    def drop(self, leases: Iterable[Lease]) -> None:
        """Stop renewing these leases (a newer lease of the same job is left alone)."""
        with self._lock:
            for lease in leases:
                if self._holds(lease):
                    del self._held[lease.job_id]
                    self._fence_at.pop(lease.job_id, None)
                    self._finishing.discard(lease.job_id)

    def due(self, now: float) -> list[Lease]:
        """Held leases whose fence time has come (`now` from time.monotonic()): no renewal
        got through for most of their length, so their handlers must stop now."""
        if now < self._earliest_fence:
            return []
        with self._lock:
            return [
                self._held[job_id][0]
                for job_id, fence_at in self._fence_at.items()
                if fence_at <= now and job_id in self._held
            ]

    def any_due(self, now: float) -> bool:
        """Whether any held lease may be past its fence time (no lock: one comparison)."""
        return now >= self._earliest_fence

    def expired(self, leases: Iterable[Lease], now: float) -> list[Lease]:
        """Those of `leases` held here and past their fence time: an outcome under them
        is not to be sent (the job may run elsewhere by now)."""
        with self._lock:
            return [
                lease
                for lease in leases
                if self._holds(lease) and self._fence_at.get(lease.job_id, now + 1) <= now
            ]

    def fence_at(self, job_id: int) -> float:
        """The time.monotonic() by which the job's handler must have stopped (infinite
        for a job not held here)."""
        with self._lock:
            return self._fence_at.get(job_id, float("inf"))

    def _holds(self, lease: Lease) -> bool:
        held = self._held.get(lease.job_id)
        return held is not None and held[0] == lease

    def extend_now(self, job_id: int, seconds: float) -> Future[None]:
        """Extend one lease at once, and renew it by `seconds` from then on."""
        with self._lock:
            held = self._held.get(job_id)
            if held is not None:
                self._held[job_id] = (held[0], seconds)
        if held is None or self._loop is None:
            failed: Future[None] = Future()
            failed.set_exception(RuntimeError(f"job {job_id} holds no lease in this worker"))
            return failed
        return asyncio.run_coroutine_threadsafe(self._renew([(held[0], seconds)]), self._loop)

    def renew_soon(self) -> None:
        """Renew every held lease now rather than at the end of the interval: the
        renewal reports the cancels asked of them (for those a LISTEN missed)."""
        self._renew_asked = True
        self._poke()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop renewing; wait up to `timeout` for the thread (a daemon: it cannot keep
        the process alive)."""
        self._stopping = True
        self._poke()
        self._thread.join(timeout)

    def _stop_requested(self) -> bool:
        return self._stopping  # set by another thread while we waited

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # closed: the loop is being restarted
                loop.call_soon_threadsafe(wake.set)

    def _interval(self) -> float:
        with self._lock:
            shortest = min((seconds for _, seconds in self._held.values()), default=30.0)
        return max(0.1, shortest / 3)

    def _thread_main(self) -> None:
        """Supervised: whatever ends the renewal loop but a stop is logged, and the loop
        starts again after a bounded backoff."""
        failures = 0
        while not self._stopping:
            try:
                asyncio.run(self._main())
            except Exception:
                failures += 1
                delay = restart_delay(failures)
                log.exception("lease renewal failed; restarting in %.1fs", delay)
                time.sleep(delay)

    async def _main(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._renew_lock = asyncio.Lock()
        conn = None
        failures = 0  # renewals (or connections for them) that failed in a row
        try:
            while not self._stopping:
                if failures:
                    # Tried again soon, not an interval later: each renewal that does
                    # not get through brings the fence times closer (a server restart
                    # or a terminated connection would otherwise stop every handler).
                    await self._pause(retry_delay(failures, self._interval()))
                    if self._stop_requested():
                        break
                if conn is None or conn.is_closed():
                    try:
                        conn = await connect(
                            self._target,
                            server_settings=HOT_PATH_SESSION_SETTINGS,
                            command_timeout=WORKER_COMMAND_TIMEOUT,
                        )
                        self._queue = JobQueue(conn, self._schema)
                    except Exception as exc:
                        failures += 1
                        log.warning("lease renewal cannot connect (%s); retrying", exc)
                        self._ready.set()
                        continue
                self._ready.set()
                if not failures:  # after a failure the renewal that failed is due now
                    due = loop.time() + self._interval()
                    while (
                        not self._stop_requested() and not self._renew_asked and loop.time() < due
                    ):
                        self._planned_interval = due - loop.time()
                        await self._pause(due - loop.time())
                        due = min(due, loop.time() + self._interval())
                if self._stop_requested():
                    break
                if conn.is_closed():  # ended meanwhile (a terminated backend, a restart)
                    failures = 1
                    continue
                self._renew_asked = False  # before the read: a later ask renews again
                with self._lock:
                    held = list(self._held.values())
                failures = 0
                if held:
                    failure = await self._renew_bounded(held)
                    if failure is not None:
                        failures = 1
                        log.warning("renewing %d leases failed: %s", len(held), failure)
                        if conn is not None:
                            conn.terminate()  # a half-open link would not answer a close
                        conn = None
        finally:
            self._loop = self._wake = None
            self._ready.set()
            if conn is not None and not conn.is_closed():
                await conn.close()

    async def _pause(self, seconds: float) -> None:
        """Sleep up to `seconds`; a poke (new leases, a stop) ends it early."""
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, seconds))
        self._wake.clear()

    async def _renew_bounded(self, held: list[tuple[Lease, float]]) -> BaseException | None:
        """One renewal, given up after `renew_timeout`; the error, if it failed. Not
        wait_for: a query cancelled on a dead link waits for the driver's cancel request."""
        renewal = asyncio.ensure_future(self._renew(held))
        await asyncio.wait({renewal}, timeout=renew_timeout(self._interval()))
        if not renewal.done():
            renewal.cancel()
            return TimeoutError("no answer in time")
        return renewal.exception()

    async def _renew(self, held: list[tuple[Lease, float]]) -> None:
        assert self._queue is not None
        assert self._renew_lock is not None
        async with self._renew_lock:  # one connection: one statement at a time
            sent = time.monotonic()
            result = await self._queue.extend_leases(
                [LeaseExtension(lease=lease, seconds=seconds) for lease, seconds in held]
            )
        self._renewed(held, set(result.renewed), sent)
        for job_id in result.cancel_requested:
            self._owner_loop.call_soon_threadsafe(self._on_cancel_requested, job_id)
        for lease in result.lost:
            with self._lock:  # acked meanwhile is not lost: only leases we still hold
                still_held = self._holds(lease) and lease.job_id not in self._finishing
                if still_held:
                    del self._held[lease.job_id]
                    self._fence_at.pop(lease.job_id, None)
            if still_held:  # the worker logs it, with the job's ids
                self._owner_loop.call_soon_threadsafe(self._on_lost, lease)

    def _renewed(self, held: list[tuple[Lease, float]], renewed: set[int], sent: float) -> None:
        """Leases renewed by a statement sent at `sent` hold until then plus their length."""
        moved = []
        with self._lock:
            for lease, seconds in held:
                if lease.job_id in renewed and self._holds(lease):
                    at = self._fence_at[lease.job_id] = sent + seconds - fence_margin(seconds)
                    moved.append((lease.job_id, at))
            self._earliest_fence = min(self._fence_at.values(), default=float("inf"))
        if self.on_fence_moved is not None:
            for job_id, at in moved:
                self.on_fence_moved(job_id, at)
