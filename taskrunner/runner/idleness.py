"""When a worker asked to stop once idle (stop_when_idle) has nothing left to do.

Idle is stricter than "nothing running": every outcome must be written and none of the
worker's jobs whose outcome could not be written may still be running under it in the
database, or the worker would stop with work of its own still due.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sized

from taskrunner.queue import JobQueue
from taskrunner.runner.acks import AckWriter

__all__ = ["idle_now"]


async def idle_now(
    *,
    queue: JobQueue,
    acks: AckWriter,
    running: Sized,
    owner: str,
    task_names: list[str],
    queues: tuple[str, ...] | None,
    poll_interval: float,
    sleep: Callable[[float], Awaitable[None]],
) -> bool:
    """No job running, every outcome written, none of this worker's jobs left running
    in the database, and nothing runnable: the worker is idle."""
    if acks.backlog and not await acks.wait_empty(poll_interval):
        return False
    if running:
        return False
    if acks.given_up and await _still_held(queue, acks.given_up, owner):
        await sleep(poll_interval)
        return False
    return not await queue.runnable_exists(task_names, queues)


async def _still_held(queue: JobQueue, job_ids: set[int], owner: str) -> bool:
    """Whether jobs whose outcome could not be written still run under this worker
    (until their leases run out and they are rescued)."""
    rows = await queue.get_many(sorted(job_ids))
    held = {i for i, r in rows.items() if r.status == "running" and r.lease_owner == owner}
    job_ids.intersection_update(held)
    return bool(held)
