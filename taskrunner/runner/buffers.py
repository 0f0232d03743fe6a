"""A small batch buffer: acks are written one statement per batch, not per job."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("taskrunner")


class BatchBuffer(Generic[T]):
    """Collects items and writes them in batches of up to `max_size`.

    Group commit: the first item starts a flush (after `max_delay`, 0 by default: the
    items added in the same loop turn go together), and whatever arrives while a batch
    is in flight goes in the next one, so batches grow exactly when the database is the
    bottleneck. A failed flush puts the items back (nothing is dropped) and retries.
    """

    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[None]],
        *,
        max_size: int = 200,
        max_delay: float = 0.0,
        retry_delay: float = 0.5,
    ) -> None:
        self._flush = flush
        self.max_size = max_size
        self.max_delay = max_delay
        self.retry_delay = retry_delay
        self._items: list[T] = []
        self._timer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> None:
        self._items.append(item)
        if self._timer is None or self._timer.done():
            delay = 0.0 if len(self._items) >= self.max_size else self.max_delay
            self._timer = asyncio.create_task(self._flush_later(delay))

    async def _flush_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._flush_until_empty()

    async def _flush_until_empty(self) -> None:
        while self._items:
            try:
                await self.flush()
            except Exception:
                log.exception("writing a batch failed; retrying in %.1fs", self.retry_delay)
                await asyncio.sleep(self.retry_delay)

    async def flush(self) -> None:
        """Write everything buffered now; on failure the items stay buffered."""
        async with self._lock:
            while self._items:
                batch, self._items = self._items[: self.max_size], self._items[self.max_size :]
                try:
                    await self._flush(batch)
                except BaseException:
                    self._items[:0] = batch
                    raise

    async def close(self) -> None:
        """Flush until empty, retrying failures."""
        if self._timer is not None and not self._timer.done():
            await self._timer
        await self._flush_until_empty()
