"""PGQueuer through its documented API.

* schema: ``Queries.install()`` (what ``pgq install`` runs, durable tables) followed by
  ``Queries.optimize_autovacuum()`` (``pgq autovac``, the documented recommended settings);
* producer: ``Queries`` over ``AsyncpgPoolDriver``; one job = ``queries.enqueue(name,
  payload)``, a batch = ``queries.enqueue([names], [payloads], [priorities])``;
* worker: a factory yielding ``PgQueuer(AsyncpgDriver(connection))`` with
  ``@pgq.entrypoint`` handlers, run by ``pgqueuer.run(factory, ...)`` ("as ``pgq run``
  does", SIGINT/SIGTERM handled by it) under uvloop, with ``max_concurrent_tasks`` = the
  concurrency and ``batch_size`` = half of it (PGQueuer requires
  ``max_concurrent_tasks >= 2 * batch_size``); ``mode=drain`` to stop when empty.
  LISTEN/NOTIFY is always on in PGQueuer.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from importlib.metadata import version as _pkg_version
from typing import Any

import asyncpg
import pgqueuer
from pgqueuer import AsyncpgDriver, AsyncpgPoolDriver, PgQueuer
from pgqueuer.models import Job
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode

from benchmarks.compare import record
from benchmarks.compare.adapters.base import Adapter, Args, Task

DEQUEUE_TIMEOUT = timedelta(seconds=30)  # pgq run's default


def _payload(args: Args) -> bytes:
    return json.dumps(args).encode()


class PgQueuerAdapter(Adapter):
    name = "pgqueuer"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self.batch_size = max(1, concurrency // 2)
        self.pool: asyncpg.Pool | None = None
        self.queries: Queries | None = None

    def version(self) -> str:
        return _pkg_version("pgqueuer")

    def settings(self) -> dict[str, Any]:
        return {
            "driver": f"AsyncpgDriver (one asyncpg {_pkg_version('asyncpg')} connection), uvloop",
            "worker": "pgqueuer.run(factory) -> PgQueuer.run (QueueManager + SchedulerManager)",
            "max_concurrent_tasks": self.concurrency,
            "batch_size": self.batch_size,
            "dequeue_timeout": f"{DEQUEUE_TIMEOUT.total_seconds():g} s (default)",
            "heartbeat_timeout": "30 s (default)",
            "wake-up": "LISTEN/NOTIFY (built in)",
            "schema": "Queries.install() durable + Queries.optimize_autovacuum()",
            "producer": f"Queries(AsyncpgPoolDriver(pool min=max={self.concurrency}))",
            "payload": "bytes: JSON [seq, t]",
            "finished": "pgqueuer_log rows with status 'successful'",
            "cpu jobs": f"ProcessPoolExecutor(max_workers={os.cpu_count()}) "
            "awaited from an async entrypoint (PGQueuer has no process executor)",
        }

    async def install(self, dsn: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            queries = Queries(AsyncpgDriver(conn))
            await queries.install()
            await queries.optimize_autovacuum()
        finally:
            await conn.close()

    async def open_producer(self, dsn: str) -> None:
        self.pool = await asyncpg.create_pool(
            dsn, min_size=self.concurrency, max_size=self.concurrency
        )
        self.queries = Queries(AsyncpgPoolDriver(self.pool))

    async def close_producer(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
            self.queries = None

    async def enqueue_one(self, task: Task, args: Args) -> None:
        assert self.queries is not None
        await self.queries.enqueue(task, _payload(args))

    async def enqueue_batch(self, task: Task, args: Sequence[Args]) -> None:
        assert self.queries is not None
        n = len(args)
        await self.queries.enqueue([task] * n, [_payload(a) for a in args], [0] * n)

    async def counts(self, dsn: str) -> dict[str, int]:
        conn = await asyncpg.connect(dsn)
        try:
            pending = await conn.fetchval("SELECT count(*) FROM pgqueuer")
            finished = await conn.fetchval(
                "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'"
            )
            return {"pending": pending, "finished": finished}
        finally:
            await conn.close()

    async def run_worker(self, dsn: str, *, drain: bool) -> None:
        @contextlib.asynccontextmanager
        async def factory() -> AsyncIterator[PgQueuer]:
            conn = await asyncpg.connect(dsn)
            pgq = PgQueuer(AsyncpgDriver(conn))

            @pgq.entrypoint("noop")
            async def noop(job: Job) -> None:
                seq, t = json.loads(job.payload or b"[]")
                record.hit(seq, t)

            @pgq.entrypoint("burn")
            async def burn(job: Job) -> None:
                seq, t, iters = json.loads(job.payload or b"[]")
                await record.burn_in_pool(seq, t, iters)

            record.RECORDER.ready()
            try:
                yield pgq
            finally:
                record.RECORDER.returned()  # PgQueuer.run has returned: statuses flushed
                await conn.close()

        try:
            await pgqueuer.run(
                factory,
                dequeue_timeout=DEQUEUE_TIMEOUT,
                batch_size=self.batch_size,
                max_concurrent_tasks=self.concurrency,
                mode=QueueExecutionMode.drain if drain else QueueExecutionMode.continuous,
            )
        finally:
            record.shutdown_process_pool()


ADAPTER = PgQueuerAdapter
