"""Channel names, and LISTEN on a dedicated connection.

Enqueues notify "<schema>.jobs" with the queue name (from a statement trigger, delivered
at commit); cancels of running jobs notify "<schema>.cancel" with the job id. LISTEN needs
a session of its own: behind PgBouncer in transaction mode give it a direct connection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import asyncpg

from taskrunner.queue.errors import translate_errors


def jobs_channel(schema: str) -> str:
    return f"{schema}.jobs"


def cancel_channel(schema: str) -> str:
    return f"{schema}.cancel"


class Listener:
    """Routes notifications of some channels on one connection to plain callbacks."""

    def __init__(self, conn: asyncpg.Connection, handlers: Mapping[str, Callable[[str], None]]):
        self.conn = conn
        self._handlers = dict(handlers)
        self._callbacks: dict[str, Callable[..., None]] = {}

    @translate_errors
    async def start(self) -> None:
        for channel, handler in self._handlers.items():
            callback = self._make_callback(handler)
            self._callbacks[channel] = callback
            await self.conn.add_listener(channel, callback)

    @staticmethod
    def _make_callback(handler: Callable[[str], None]) -> Callable[..., None]:
        def callback(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            handler(payload)

        return callback

    @translate_errors
    async def stop(self) -> None:
        for channel, callback in self._callbacks.items():
            if not self.conn.is_closed():
                await self.conn.remove_listener(channel, callback)
        self._callbacks.clear()
