"""LISTEN for a worker: wake-ups on enqueue, cancels of running jobs.

On a connection of its own, supervised: when the connection ends (the server restarted,
the backend was terminated) or stops answering (a half-open link, found by a ping every
`check_interval`), the loop raises, its supervisor logs it and LISTENs again with
backoff. Polling covers the gap meanwhile. A notification sent while no LISTEN was in
place (before the first one, or in such a gap) is lost: `on_listening` is called each
time LISTEN is in place, for the worker to catch up on what it may have missed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from taskrunner.db import (
    WORKER_COMMAND_TIMEOUT,
    WORKER_SESSION_SETTINGS,
    ResolvedDsn,
    close_quickly,
    connect,
)
from taskrunner.errors import ConnectError
from taskrunner.queue import JobQueue, Listener

CHECK_INTERVAL = 10.0


class Notifications:
    """Calls `on_job(queue)` for each enqueue notification and `on_cancel(job_id)` for
    each cancel of a running job, for as long as `run()` runs; `on_listening()` once
    LISTEN is in place, each time it is."""

    def __init__(
        self,
        target: ResolvedDsn,
        schema: str,
        *,
        on_job: Callable[[str], None],
        on_cancel: Callable[[int], None],
        on_listening: Callable[[], None] | None = None,
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        self._target = target
        self._schema = schema
        self._on_job = on_job
        self._on_cancel = on_cancel
        self._on_listening = on_listening
        self._check_interval = check_interval
        self.listening = asyncio.Event()  # set while LISTEN is in place
        self.connection: Any = None  # the LISTEN connection, while there is one

    def _cancel(self, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self._on_cancel(int(payload))

    async def run(self) -> None:
        """LISTEN until the connection ends; then raise ConnectError (for the supervisor)."""
        conn = await connect(
            self._target,
            server_settings=WORKER_SESSION_SETTINGS,
            command_timeout=WORKER_COMMAND_TIMEOUT,
        )
        ended = asyncio.Event()

        def on_termination(_conn: Any) -> None:
            ended.set()

        conn.add_termination_listener(on_termination)
        queue = JobQueue(conn, self._schema)
        channels = {queue.jobs_channel: self._on_job, queue.cancel_channel: self._cancel}
        listener = Listener(conn, channels)
        try:
            await listener.start()
            self.connection = conn
            self.listening.set()
            if self._on_listening is not None:
                self._on_listening()
            while not ended.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), self._check_interval)
                if not ended.is_set():
                    await queue.ping()
            raise ConnectError("the LISTEN connection ended")
        finally:
            self.listening.clear()
            self.connection = None
            await close_quickly(conn)
