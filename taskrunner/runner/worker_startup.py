"""Opening what a worker needs around its claim loop, each part given only what it uses.

Start-up waits on round trips more than on work, so the worker opens its connections at
once; its background loops are supervised (runner/supervise.py) so that none dies
silently, and the claim connection is its own so a claim costs no pool round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from taskrunner.db import CLAIM_SESSION_SETTINGS, WORKER_COMMAND_TIMEOUT, ResolvedDsn, connect
from taskrunner.errors import DatabaseError
from taskrunner.queue import AckResult, JobQueue, Lease
from taskrunner.runner.acks import AckWriter
from taskrunner.runner.executors import Executors
from taskrunner.runner.instruments import Instruments, Run, instruments_of
from taskrunner.runner.leases import LeaseKeeper
from taskrunner.runner.listening import Notifications
from taskrunner.runner.maintenance import Maintenance
from taskrunner.runner.middleware import Middleware
from taskrunner.runner.outcomes import Outcomes
from taskrunner.runner.progress import Progress, start_progress_line
from taskrunner.runner.supervise import start_supervised
from taskrunner.runner.unknown_tasks import UnknownTaskWatch
from taskrunner.runner.worker_settings import WorkerSettings

if TYPE_CHECKING:
    from taskrunner.runner.metrics import Metrics
    from taskrunner.runner.outcomes import Execution
    from taskrunner.runner.tracing import Tracing

log = logging.getLogger("taskrunner")

__all__ = ["ClaimConnection", "WorkerParts", "open_parts", "start_background"]


class ClaimConnection:
    """Claims go through a connection of their own, set up for the claim plan, and
    without a pool round of acquire and release per claim."""

    __slots__ = ("queue", "schema", "target")

    def __init__(self, target: ResolvedDsn, schema: str) -> None:
        self.target = target
        self.schema = schema
        self.queue: JobQueue | None = None  # open once claimed through

    async def open_ahead(self) -> None:
        """Open the claim connection ahead, during start-up; if that fails, the claim
        loop tries again with its backoff."""
        with contextlib.suppress(DatabaseError):
            await self.get()

    async def get(self) -> JobQueue:
        """The claim connection's queue, opened again if it was closed."""
        if self.queue is None or self.queue.db.is_closed():
            conn = await connect(
                self.target,
                server_settings=CLAIM_SESSION_SETTINGS,
                raw_jsonb=False,
                command_timeout=WORKER_COMMAND_TIMEOUT,
            )
            self.queue = JobQueue(conn, self.schema)
        return self.queue


@dataclass(frozen=True, slots=True)
class WorkerParts:
    """What a worker runs its jobs with, opened before its first claim."""

    keeper: LeaseKeeper
    acks: AckWriter
    outcomes: Outcomes
    executors: Executors
    instruments: Instruments | None  # the worker's metrics and tracing, if any
    run: Run  # the executors' run, inside any instruments


async def open_parts(
    *,
    target: ResolvedDsn,
    schema: str,
    settings: WorkerSettings,
    claims: ClaimConnection,
    unknown_tasks: UnknownTaskWatch,
    on_cancel_requested: Callable[[int], None],
    on_lost: Callable[[Lease], None],
    on_acks_written: Callable[[AckResult], None],
    middleware: Sequence[Middleware],
    metrics: Metrics | None,
    tracing: Tracing | None,
    loop: asyncio.AbstractEventLoop,
) -> WorkerParts:
    """Lease renewal, the ack writer, outcomes and executors (their run inside any
    instruments); the renewal thread's connection, the claim connection and the check
    for unknown tasks open at once."""
    keeper = LeaseKeeper(
        target,
        schema,
        on_cancel_requested=on_cancel_requested,
        on_lost=on_lost,
        owner_loop=loop,
    )
    await asyncio.gather(
        asyncio.to_thread(keeper.start), claims.open_ahead(), unknown_tasks.check()
    )
    acks = AckWriter(target, schema, keeper, on_acks_written)
    acks.start()
    outcomes = Outcomes(acks, keeper)
    executors = open_executors(settings, keeper, middleware, tracing.carrier if tracing else None)
    instruments = instruments_of(metrics, tracing)
    run = instruments.around(executors.run) if instruments else executors.run
    return WorkerParts(keeper, acks, outcomes, executors, instruments, run)


def open_executors(
    settings: WorkerSettings,
    keeper: LeaseKeeper,
    middleware: Sequence[Middleware],
    trace_carrier: Callable[[], dict[str, str]] | None,
) -> Executors:
    """The executors, extending and fencing through the lease keeper, and told when
    a lease's fence moves."""
    executors = Executors(
        settings.concurrency,
        keeper.extend_now,
        settings.process_pool_size,
        middleware=middleware,
        fence_of=keeper.fence_at,
        trace_carrier=trace_carrier,
    )
    keeper.on_fence_moved = executors.move_fence
    return executors


def start_background(
    *,
    queue: JobQueue,
    settings: WorkerSettings,
    unknown_tasks: UnknownTaskWatch,
    metrics: Metrics | None,
    notifications: Notifications | None,
    on_rescued: Callable[[], None],
    run_schedules: Callable[[], Awaitable[None]],
    progress: Progress,
    owner: str,
    running: dict[int, Execution],
    task_names: list[str],
) -> list[asyncio.Task[None]]:
    """Start the worker's supervised background loops: rescue and pruning, LISTEN
    (unless behind a pooler without a direct connection), schedules, the progress line;
    then say the worker has started."""
    background = Maintenance(
        queue,
        unknown_tasks,
        rescue_interval=settings.rescue_interval,
        prune_interval=settings.prune_interval,
        on_rescued=on_rescued,
        count_rescued=metrics.count_rescued if metrics else None,
    ).start()
    if notifications is not None:
        background.append(start_supervised("listening", notifications.run))
    else:
        log.info(
            "behind a pooler and no listen_dsn: no LISTEN, polling every %.1fs",
            settings.poll_interval,
        )
    background.append(start_supervised("schedules", run_schedules))
    background.append(start_progress_line(progress, owner, running))
    log.info(
        "worker %s started: tasks %s, queues %s, concurrency %d",
        owner,
        ", ".join(task_names),
        ", ".join(settings.queues) if settings.queues else "all",
        settings.concurrency,
    )
    return background
