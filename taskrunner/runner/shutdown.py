"""A worker's shutdown, bounded even with the database unreachable.

It hands back at once the jobs claimed ahead and never started (other workers take them
while the running ones finish), lets running jobs finish for `shutdown_timeout`, then
cancels those it can (thread handlers cannot be interrupted; it waits for them unless a
second stop request forces it on). Once its handlers have stopped, it writes their
outcomes, hands back the jobs it interrupted and closes its connections, executors and
lease renewal, all within SHUTDOWN_GRACE seconds (FORCED_GRACE after a second stop
request). What could not be
written is logged with the job ids; those jobs run again once their leases run out.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from taskrunner.db import close_quickly
from taskrunner.errors import DatabaseError
from taskrunner.queue import JobQueue, Lease
from taskrunner.runner.acks import AckWriter
from taskrunner.runner.executors import Executors
from taskrunner.runner.failures import safe_str
from taskrunner.runner.leases import LeaseKeeper

if TYPE_CHECKING:
    from taskrunner.runner.outcomes import Execution, Outcomes

log = logging.getLogger("taskrunner")

SHUTDOWN_GRACE = 3.0
FORCED_GRACE = 1.0
MIN_STEP = 0.2  # every step gets at least this long, even past the deadline


def install_stop_signals(
    loop: asyncio.AbstractEventLoop, request_stop: Callable[[], None]
) -> list[signal.Signals]:
    """SIGINT and SIGTERM ask the worker to stop (a second one: at once). Only in the main
    thread, where the loop can receive them; returns those installed."""
    if threading.current_thread() is not threading.main_thread():
        return []
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, request_stop)
        except (NotImplementedError, RuntimeError):  # not on this platform or loop
            continue
        installed.append(sig)
    return installed


async def unless_forced(
    waiting: Awaitable[Any], timeout: float | None, force: asyncio.Event
) -> bool:
    """Wait for `waiting` until `timeout` or `force`; whether it ended (else cancelled)."""
    work = asyncio.ensure_future(waiting)
    forced = asyncio.ensure_future(force.wait())
    await asyncio.wait({work, forced}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    forced.cancel()
    if not work.done():
        work.cancel()
        return False
    return True


async def shut_down(
    *,
    queue: JobQueue,
    running: dict[int, Execution],
    held: list[Execution],
    shutdown_timeout: float,
    force: asyncio.Event,
    acks: AckWriter | None,
    outcomes: Outcomes | None,
    keeper: LeaseKeeper | None,
    executors: Executors | None,
    claimer: JobQueue | None,
) -> None:
    """Hand back the `held` jobs (taken out of the claimed-ahead ones), let the `running`
    ones finish (bounded), stop the rest, write the outcomes and hand back the rest
    (bounded, even with the database gone), close everything."""
    # Beside the wait for running jobs, so that it adds nothing to the shutdown's bound.
    handing_back = asyncio.ensure_future(
        hand_back(queue, *_held_to_hand_back(held, keeper), SHUTDOWN_GRACE)
    )
    pending = [e.handle for e in running.values() if e.handle is not None]
    if pending:
        log.info("waiting up to %.0fs for %d running job(s)", shutdown_timeout, len(pending))
        await unless_forced(asyncio.wait(pending), shutdown_timeout, force)
    interrupted = [e for e in running.values() if e.handle is not None]
    for execution in interrupted:
        if execution.task.executor != "thread":  # threads cannot be interrupted
            execution.stop_reason = execution.stop_reason or "shutdown"
            assert execution.handle is not None
            execution.handle.cancel()
    if interrupted:
        if any(e.task.executor == "thread" for e in interrupted):
            log.warning("thread handlers cannot be interrupted; waiting for them to finish")
        handles = [e.handle for e in interrupted if e.handle is not None]
        if not await unless_forced(asyncio.wait(handles), None, force):
            ids = ", ".join(str(e.job.id) for e in running.values())
            log.warning("stopping without waiting for job(s) %s any longer", ids)
    await unless_forced(handing_back, None, force)  # bounded by SHUTDOWN_GRACE itself
    await wind_down(
        queue=queue,
        acks=acks,
        to_release=outcomes.to_release if outcomes is not None else [],
        workflows=outcomes.to_release_workflows if outcomes is not None else [],
        keeper=keeper,
        executors=executors,
        claimer=claimer,
        force=force,
    )


def _held_to_hand_back(
    held: list[Execution], keeper: LeaseKeeper | None
) -> tuple[list[Lease], list[int]]:
    """The leases and workflows of jobs claimed ahead, no longer renewed: if the
    hand-back fails, they run out."""
    leases = [execution.lease for execution in held]
    workflows = sorted({e.job.workflow_id for e in held if e.job.workflow_id is not None})
    if leases and keeper is not None:
        keeper.drop(leases)
        log.info("handing back %d job(s) claimed ahead", len(leases))
    return leases, workflows


async def wind_down(
    *,
    queue: JobQueue,
    acks: AckWriter | None,
    to_release: list[Lease],
    workflows: list[int],
    keeper: LeaseKeeper | None,
    executors: Executors | None,
    claimer: JobQueue | None,
    force: asyncio.Event,
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (FORCED_GRACE if force.is_set() else SHUTDOWN_GRACE)

    def left() -> float:
        return max(MIN_STEP, deadline - loop.time()) if not force.is_set() else MIN_STEP

    if acks is not None:
        await acks.close(left())
    if to_release:
        await hand_back(queue, to_release, workflows, left())
    # What is left to close is independent, so close it at once.
    closing: list[Awaitable[Any]] = []
    if keeper is not None:
        closing.append(asyncio.to_thread(keeper.stop, left()))
    if executors is not None:
        closing.append(executors.close())
    if claimer is not None:
        closing.append(close_quickly(claimer.db))
    for outcome in await asyncio.gather(*closing, return_exceptions=True):
        if isinstance(outcome, Exception):  # each closes whatever the others did
            log.warning("while shutting down: %s: %s", type(outcome).__name__, outcome)


async def hand_back(
    queue: JobQueue, leases: list[Lease], workflows: list[int], timeout: float
) -> None:
    """Release these leases' jobs to the queue (bounded); a failure is logged: those
    jobs run again once their leases run out."""
    if not leases:
        return
    release = asyncio.ensure_future(queue.release_many(leases, workflows=workflows))
    # Not wait_for: it would wait for the cancelled release, and a query cancelled on a
    # dead link keeps its connection until the driver's cancel request is answered.
    await asyncio.wait({release}, timeout=timeout)
    if not release.done():
        release.cancel()
        exc: BaseException | None = TimeoutError("no answer in time")
    else:
        exc = release.exception()
    if isinstance(exc, DatabaseError | TimeoutError):
        log.warning(
            "could not hand job(s) %s back (%s); they run again once their leases run out",
            ", ".join(str(lease.job_id) for lease in leases),
            safe_str(exc) or type(exc).__name__,
        )
    elif exc is not None:
        raise exc
