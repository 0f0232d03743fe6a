"""Opening, closing and migrating a runner: its DSN, pool, schema and key lifetime.

A part of TaskRunner kept apart from the verbs that use the pool. An opened runner
holds one pool and the JobQueue over it; every verb goes through `job_queue`, which
raises a TaskRunnerError naming the fix while the runner is closed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import asyncpg

from taskrunner.db import (
    CONNECT_WAIT,
    WORKER_COMMAND_TIMEOUT,
    WORKER_SESSION_SETTINGS,
    Migrator,
    ResolvedDsn,
    connect,
    create_pool,
    resolve_dsn,
)
from taskrunner.errors import SchemaOutOfDate, TaskRunnerError
from taskrunner.queue import JobQueue, is_connection_lost, translate_error

log = logging.getLogger("taskrunner")

OPEN_RETRY_FIRST = 0.5  # seconds before the second try of an opening cut short
OPEN_RETRY_MAX = 10.0
DEFAULT_IDEMPOTENCY_TTL = 24 * 3600.0  # a new schema's (migration 0004)
POOL_CLOSE_TIMEOUT = 1.0  # a worker's pool, at the end of its shutdown


class ConnectionVerbs:
    """open/close/migrate and the state they keep (a part of TaskRunner, kept apart)."""

    if TYPE_CHECKING:
        dsn: str | None
        schema: str
        auto_migrate: bool
        pool_size: int
        statement_cache_size: int
        idempotency_ttl_seconds: float
        _explicit_ttl: bool
        _target: ResolvedDsn | None
        _pool: asyncpg.Pool | None
        _queue: JobQueue | None
        _explicit_retention: bool

        async def _settle_retention(self, db: Any) -> None: ...

    @property
    def target(self) -> ResolvedDsn:
        """Where the runner connects (resolved when it opened)."""
        if self._target is None:
            raise _not_open()
        return self._target

    @property
    def job_queue(self) -> JobQueue:
        """The bare queue under this runner (open runners only)."""
        if self._queue is None:
            raise _not_open()
        return self._queue

    @property
    def is_open(self) -> bool:
        return self._queue is not None

    async def _resolve(self) -> ResolvedDsn:
        if self._target is None:
            target = await resolve_dsn(self.dsn)
            # No prepared-statement cache means a pooler in transaction mode.
            self._target = replace(target, behind_pooler=self.statement_cache_size == 0)
        return self._target

    async def open(self) -> None:
        """Connect, and migrate (auto_migrate) or check that the schema is up to date.
        While the server is unreachable it tries again for up to 10 seconds."""
        await self._open(wait=CONNECT_WAIT, for_worker=False)

    async def _open(self, *, wait: float | None, for_worker: bool) -> None:
        """Open with `wait` seconds of tries (None: until the server answers).

        A connection lost half-way (the server restarted or ended it while migrating or
        reading settings) is one more failed try, not a driver error for the caller: the
        whole opening starts again with backoff, one log line per try, within the same
        `wait`. Any other driver error becomes a TaskRunnerError."""
        if self._queue is not None:
            return
        loop = asyncio.get_running_loop()
        deadline = None if wait is None else loop.time() + wait
        tries = 0
        while True:
            tries += 1
            left = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                await self._open_once(wait=left, for_worker=for_worker)
                return
            except TaskRunnerError:
                raise
            except Exception as exc:
                error = translate_error(exc, self.schema)
                if not is_connection_lost(exc):
                    raise error from exc
                delay = min(OPEN_RETRY_MAX, OPEN_RETRY_FIRST * 2 ** min(tries - 1, 10))
                if deadline is not None and loop.time() + delay > deadline:
                    raise error from exc
                log.warning(
                    "opening schema %s: %s; try %d failed, trying again in %.1fs",
                    self.schema,
                    error,
                    tries,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _open_once(self, *, wait: float | None, for_worker: bool) -> None:
        """One try of `_open`. A runner opened for its worker gives its pool the
        worker's timeouts; it migrates over a connection of its own, whose statements
        may take as long as they need. Whether anything is pending is read first, on the
        pool: a worker starting against an up-to-date schema (every replacement of one
        that died) opens no connection of its own for that."""
        target = await self._resolve()
        migrator = Migrator(self.schema)
        pool_options: dict[str, Any] = {}
        if for_worker:
            pool_options = {
                "server_settings": WORKER_SESSION_SETTINGS,
                "command_timeout": WORKER_COMMAND_TIMEOUT,
            }
        pool = await create_pool(
            target,
            max_size=self.pool_size,
            statement_cache_size=self.statement_cache_size,
            wait=wait,
            **pool_options,
        )
        try:
            async with pool.acquire() as conn:
                pending = await migrator.pending(conn)
                if pending and self.auto_migrate and not for_worker:
                    await migrator.migrate(conn)
            if pending and not self.auto_migrate:
                raise SchemaOutOfDate(self.schema, pending)
            if pending and for_worker:
                await self._migrate_alone(target, migrator, wait)
            queue = JobQueue(pool, self.schema)
            await self._settle_idempotency_ttl(queue)
            await self._settle_retention(pool)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        self._queue = queue

    @staticmethod
    async def _migrate_alone(target: ResolvedDsn, migrator: Migrator, wait: float | None) -> None:
        """Migrate on a connection without the worker's statement timeout."""
        conn = await connect(target, wait=wait, raw_jsonb=False)
        try:
            await migrator.migrate(conn)
        finally:
            await conn.close()

    async def _settle_idempotency_ttl(self, queue: JobQueue) -> None:
        """Write the key lifetime given to this runner to the schema, or take the
        schema's."""
        if not self._explicit_ttl:
            self.idempotency_ttl_seconds = await queue.idempotency_ttl()
            return
        previous = await queue.set_idempotency_ttl(self.idempotency_ttl_seconds)
        if previous is not None:
            log.info(
                "idempotency_ttl of schema %s changed from %gs to %gs",
                self.schema,
                previous,
                self.idempotency_ttl_seconds,
            )

    async def close(self) -> None:
        pool, self._pool, self._queue = self._pool, None, None
        if pool is not None:
            await pool.close()

    async def _close_within(self, seconds: float) -> None:
        """Close, but drop the connections after `seconds` (the server may be gone)."""
        pool, self._pool, self._queue = self._pool, None, None
        if pool is None:
            return
        closing = asyncio.ensure_future(pool.close())
        await asyncio.wait({closing}, timeout=seconds)  # not wait_for: it waits for the cancel
        if not closing.done() or closing.exception() is not None:
            closing.cancel()
            pool.terminate()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def migrate(self, dry_run: bool = False) -> list[str]:
        """Apply pending migrations (names returned); with `dry_run` only name them."""
        migrator = Migrator(self.schema)
        if self._pool is not None:
            async with self._pool.acquire() as conn:
                return await migrator.migrate(conn, dry_run=dry_run)
        conn = await connect(await self._resolve(), wait=CONNECT_WAIT)
        try:
            applied = await migrator.migrate(conn, dry_run=dry_run)
            if not dry_run and self._explicit_ttl:
                await self._settle_idempotency_ttl(JobQueue(conn, self.schema))
            if not dry_run and self._explicit_retention:
                await self._settle_retention(conn)
            return applied
        finally:
            await conn.close()


def _not_open() -> TaskRunnerError:
    return TaskRunnerError(
        "the runner is not open: use `async with runner:` or `await runner.open()`"
    )
