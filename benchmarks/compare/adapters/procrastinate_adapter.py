"""Procrastinate through its documented API.

* schema: ``app.schema_manager.apply_schema_async()`` (what ``procrastinate schema
  --apply`` runs);
* producer: ``App(connector=PsycopgConnector(...))`` opened with ``open_async``; one job =
  ``task.defer_async(**kwargs)``, a batch = ``task.batch_defer_async(*kwargs)``;
* worker: ``app.run_worker_async(concurrency=..., wait=..., listen_notify=True)`` under
  uvloop; ``wait=False`` is Procrastinate's "stop once caught up" (the drain mode);
  SIGINT/SIGTERM are handled by the worker itself (``install_signal_handlers`` default).
  ``delete_jobs`` stays at its default (``never``): finished jobs are kept as
  ``succeeded`` rows, which is what the finished-row check counts.

The untimed pre-fill of the big backlog goes through Procrastinate's own SQL function
``procrastinate_defer_jobs_v1`` (the one ``batch_defer_async`` calls), fed by
``generate_series``, because a million Python-side defers would take minutes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib.metadata import version as _pkg_version
from typing import Any

import asyncpg
import procrastinate

from benchmarks.compare import record
from benchmarks.compare.adapters.base import Adapter, Args, Task

KWARGS = {"noop": ("seq", "t"), "burn": ("seq", "t", "iters")}

FILL = """
SELECT procrastinate_defer_jobs_v1(array_agg(
    ROW('default', $1::text, 0, NULL, NULL, jsonb_build_object('seq', g, 't', 0.0), NULL)
    ::procrastinate_job_to_defer_v1
))
FROM generate_series($2::bigint, $3::bigint) AS g
"""


def _make_app(dsn: str, pool_size: int) -> procrastinate.App:
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=dsn, min_size=pool_size, max_size=pool_size
        )
    )
    app.task(name="noop")(record.noop)
    app.task(name="burn")(record.burn_in_pool)
    return app


class ProcrastinateAdapter(Adapter):
    name = "procrastinate"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self.worker_pool_size = concurrency + 2  # + the LISTEN connection + housekeeping
        self.app: procrastinate.App | None = None

    def version(self) -> str:
        return _pkg_version("procrastinate")

    def settings(self) -> dict[str, Any]:
        return {
            "connector": f"PsycopgConnector (psycopg {_pkg_version('psycopg')}, "
            f"psycopg_pool {_pkg_version('psycopg_pool')}), uvloop",
            "worker": "App.run_worker_async",
            "concurrency": self.concurrency,
            "listen_notify": True,
            "fetch_job_polling_interval": "5 s (default)",
            "delete_jobs": "never (default)",
            "worker pool": f"min=max={self.worker_pool_size}",
            "producer pool": f"min=max={self.concurrency}",
            "payload": "task kwargs {seq, t}",
            "finished": "procrastinate_jobs rows with status 'succeeded'",
            "big-backlog fill": "procrastinate_defer_jobs_v1 fed by generate_series",
            "cpu jobs": f"ProcessPoolExecutor(max_workers={os.cpu_count()}) "
            "awaited from an async task (Procrastinate has no process executor)",
        }

    async def install(self, dsn: str) -> None:
        app = _make_app(dsn, 1)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()

    async def open_producer(self, dsn: str) -> None:
        self.dsn = dsn
        self.app = _make_app(dsn, self.concurrency)
        await self.app.open_async()

    async def close_producer(self) -> None:
        if self.app is not None:
            await self.app.close_async()
            self.app = None

    def _kwargs(self, task: Task, args: Args) -> dict[str, Any]:
        return dict(zip(KWARGS[task], args, strict=True))

    async def enqueue_one(self, task: Task, args: Args) -> None:
        assert self.app is not None
        await self.app.tasks[task].defer_async(**self._kwargs(task, args))

    async def enqueue_batch(self, task: Task, args: Sequence[Args]) -> None:
        assert self.app is not None
        await self.app.tasks[task].batch_defer_async(*(self._kwargs(task, a) for a in args))

    async def bulk_fill(self, task: Task, first_seq: int, n: int, chunk: int) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            seq, end = first_seq, first_seq + n
            while seq < end:
                upto = min(end, seq + 10 * chunk)
                await conn.execute(FILL, task, seq, upto - 1)
                seq = upto
        finally:
            await conn.close()

    async def counts(self, dsn: str) -> dict[str, int]:
        conn = await asyncpg.connect(dsn)
        try:
            pending = await conn.fetchval(
                "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
            )
            finished = await conn.fetchval(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
            )
            return {"pending": pending, "finished": finished}
        finally:
            await conn.close()

    async def run_worker(self, dsn: str, *, drain: bool) -> None:
        app = _make_app(dsn, self.worker_pool_size)
        try:
            async with app.open_async():
                record.RECORDER.ready()
                await app.run_worker_async(
                    concurrency=self.concurrency,
                    wait=not drain,
                    listen_notify=True,
                )
                record.RECORDER.returned()
        finally:
            record.shutdown_process_pool()


ADAPTER = ProcrastinateAdapter
