"""Supervision of a worker's background loops: log what went wrong, restart with backoff.

A background loop of a worker (rescue, pruning, LISTEN, ack writing) must never die
silently, nor end the worker: whatever it raises is logged and the loop starts again
after a delay that doubles with each failure in a row, up to a ceiling, so a database
that is down is not hammered. Only cancellation (the worker stopping) ends it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from taskrunner.errors import DatabaseError
from taskrunner.runner.failures import safe_str

log = logging.getLogger("taskrunner")

FIRST_DELAY = 0.5
MAX_DELAY = 30.0
HEALTHY_AFTER = 60.0  # a loop that ran this long before failing starts from FIRST_DELAY


def restart_delay(failures: int, first: float = FIRST_DELAY, ceiling: float = MAX_DELAY) -> float:
    """Seconds before the restart after `failures` failures in a row (with 20 % jitter)."""
    base: float = min(ceiling, first * 2.0 ** min(failures - 1, 30))
    return base * random.uniform(1.0, 1.2)


async def supervise(
    name: str,
    body: Callable[[], Awaitable[None]],
    *,
    first_delay: float = FIRST_DELAY,
    max_delay: float = MAX_DELAY,
) -> None:
    """Run `body()` until it returns; restart it whenever it raises an Exception.

    A DatabaseError is logged as a warning with its message (the database is down or
    refused a statement); anything else is a bug and is logged with its traceback."""
    loop = asyncio.get_running_loop()
    failures = 0
    while True:
        started = loop.time()
        try:
            await body()
            return
        except Exception as exc:
            failures = 1 if loop.time() - started >= HEALTHY_AFTER else failures + 1
            delay = restart_delay(failures, first_delay, max_delay)
            log.warning(
                "%s failed (%s: %s); restarting in %.1fs",
                name,
                type(exc).__name__,
                safe_str(exc),
                delay,
                exc_info=not isinstance(exc, DatabaseError),
            )
            await asyncio.sleep(delay)


def start_supervised(
    name: str, body: Callable[[], Awaitable[None]], **options: float
) -> asyncio.Task[None]:
    """`supervise(name, body)` in a task of its own, named after the loop."""
    return asyncio.create_task(supervise(name, body, **options), name=f"taskrunner-{name}")
