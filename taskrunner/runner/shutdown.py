"""The end of a worker's shutdown, bounded even with the database unreachable.

Once its handlers have stopped, a worker writes their outcomes, hands back the jobs it
interrupted and closes its connections, executors and lease renewal, all within
SHUTDOWN_GRACE seconds (FORCED_GRACE after a second stop request). What could not be
written is logged with the job ids; those jobs run again once their leases run out.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from taskrunner.db import close_quickly
from taskrunner.errors import DatabaseError
from taskrunner.queue import JobQueue, Lease
from taskrunner.runner.acks import AckWriter
from taskrunner.runner.executors import Executors
from taskrunner.runner.failures import safe_str
from taskrunner.runner.leases import LeaseKeeper

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
