"""The hand-written asyncpg queue: the best a Python client of the same table can do.

One table, one partial index over the queued rows, a statement-level NOTIFY trigger.

* claim: one ``UPDATE ... FROM (SELECT ... ORDER BY id LIMIT n FOR UPDATE SKIP LOCKED)``
  per round trip, n = the free concurrency slots (so never more claimed than can run);
* ack: ``DELETE ... WHERE id = ANY($1)`` on a connection of its own, group-commit style:
  while one DELETE is in flight the next ids pile up and go in the following one;
* wake-up: LISTEN on a third connection; an idle worker sleeps until a NOTIFY (1 s poll
  as a fallback), a busy one until a slot frees.

No retries, leases, priorities, idempotency or results: it is the floor cost of the
round trips, which is what the other systems are compared against.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from importlib.metadata import version as _pkg_version
from typing import Any

import asyncpg

from benchmarks.compare import record
from benchmarks.compare.adapters.base import Adapter, Args, Task

log = logging.getLogger("bench.baseline")

CHANNEL = "bench_jobs"
POLL_FALLBACK_S = 1.0

SCHEMA = f"""
CREATE TABLE bench_jobs (
    id         bigserial   PRIMARY KEY,
    task       text        NOT NULL,
    args       jsonb       NOT NULL,
    status     smallint    NOT NULL DEFAULT 0,   -- 0 queued, 1 running
    claimed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bench_jobs_queued ON bench_jobs (id) WHERE status = 0;
CREATE FUNCTION bench_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER bench_jobs_notify AFTER INSERT ON bench_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION bench_jobs_notify();
"""

INSERT_ONE = "INSERT INTO bench_jobs (task, args) VALUES ($1, $2::jsonb)"
INSERT_MANY = "INSERT INTO bench_jobs (task, args) SELECT $1, unnest($2::jsonb[])"
FILL = """
INSERT INTO bench_jobs (task, args)
SELECT $1, jsonb_build_array(g, 0.0) FROM generate_series($2::bigint, $3::bigint) AS g
"""
CLAIM = """
UPDATE bench_jobs AS j SET status = 1, claimed_at = now()
FROM (
    SELECT id FROM bench_jobs WHERE status = 0
    ORDER BY id LIMIT $1
    FOR UPDATE SKIP LOCKED
) AS c
WHERE j.id = c.id
RETURNING j.id, j.task, j.args
"""
ACK = "DELETE FROM bench_jobs WHERE id = ANY($1::bigint[])"


# -- handlers --------------------------------------------------------------------------

HANDLERS: dict[str, Callable[..., Awaitable[None]]] = {
    "noop": record.noop,
    "burn": record.burn_in_pool,
}


# -- worker ----------------------------------------------------------------------------


class _Worker:
    def __init__(self, dsn: str, concurrency: int, drain: bool) -> None:
        self.dsn = dsn
        self.concurrency = concurrency
        self.drain = drain
        self.running = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.acks: list[int] = []
        self.ack_event = asyncio.Event()
        self.slot_free = asyncio.Event()
        self.wakeup = asyncio.Event()
        self.stop = asyncio.Event()
        self.closing = False

    def _on_notify(self, *_: Any) -> None:
        self.wakeup.set()

    def _on_signal(self) -> None:
        self.stop.set()
        self.wakeup.set()
        self.slot_free.set()

    async def _wait(self, *events: asyncio.Event, timeout: float | None = None) -> None:
        waiters = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _run_job(self, job_id: int, task: str, args: str) -> None:
        try:
            await HANDLERS[task](*json.loads(args))
        except Exception:
            log.exception("job %s failed", job_id)
        finally:
            self.acks.append(job_id)
            self.ack_event.set()
            self.running -= 1
            self.slot_free.set()

    async def _acker(self, conn: asyncpg.Connection) -> None:
        while True:
            await self.ack_event.wait()
            self.ack_event.clear()
            while self.acks:
                ids, self.acks = self.acks, []
                await conn.execute(ACK, ids)
            if self.closing:
                return

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        claim_conn = await asyncpg.connect(self.dsn)
        ack_conn = await asyncpg.connect(self.dsn)
        listen_conn = await asyncpg.connect(self.dsn)
        await listen_conn.add_listener(CHANNEL, self._on_notify)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        acker = asyncio.create_task(self._acker(ack_conn))
        record.RECORDER.ready()
        try:
            while not self.stop.is_set():
                free = self.concurrency - self.running
                if free <= 0:
                    self.slot_free.clear()
                    await self._wait(self.slot_free, self.stop)
                    continue
                self.wakeup.clear()
                rows = await claim_conn.fetch(CLAIM, free)
                for row in rows:
                    self.running += 1
                    job = asyncio.create_task(self._run_job(row[0], row[1], row[2]))
                    self.tasks.add(job)
                    job.add_done_callback(self.tasks.discard)
                if len(rows) == free:
                    continue
                # The queue ran dry (for now).
                if self.drain:
                    if not rows and self.running == 0:
                        break
                    self.slot_free.clear()
                    await self._wait(self.slot_free, self.wakeup, self.stop)
                else:
                    await self._wait(self.wakeup, self.stop, timeout=POLL_FALLBACK_S)
            if self.tasks:
                await asyncio.gather(*list(self.tasks), return_exceptions=True)
        finally:
            self.closing = True
            self.ack_event.set()
            await acker
            record.RECORDER.returned()
            await listen_conn.close()
            await claim_conn.close()
            await ack_conn.close()
            record.shutdown_process_pool()


# -- adapter ---------------------------------------------------------------------------


class BaselineAdapter(Adapter):
    name = "baseline"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self.pool: asyncpg.Pool | None = None

    def version(self) -> str:
        return f"hand-written, asyncpg {_pkg_version('asyncpg')}"

    def settings(self) -> dict[str, Any]:
        return {
            "driver": f"asyncpg {_pkg_version('asyncpg')}, uvloop",
            "worker concurrency": self.concurrency,
            "claim": "UPDATE .. FROM (SELECT .. ORDER BY id LIMIT <free slots> "
            "FOR UPDATE SKIP LOCKED) RETURNING",
            "ack": "DELETE .. WHERE id = ANY($1), group-commit batches on its own connection",
            "wake-up": "LISTEN/NOTIFY (statement trigger), 1 s poll fallback",
            "worker connections": 3,
            "producer pool": f"asyncpg pool min=max={self.concurrency}",
            "payload": "jsonb array [seq, t]",
            "cpu jobs": f"ProcessPoolExecutor(max_workers={os.cpu_count()}) "
            "awaited from an async handler",
        }

    async def install(self, dsn: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(SCHEMA)
        finally:
            await conn.close()

    async def open_producer(self, dsn: str) -> None:
        self.pool = await asyncpg.create_pool(
            dsn, min_size=self.concurrency, max_size=self.concurrency
        )

    async def close_producer(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def enqueue_one(self, task: Task, args: Args) -> None:
        assert self.pool is not None
        await self.pool.execute(INSERT_ONE, task, json.dumps(args))

    async def enqueue_batch(self, task: Task, args: Sequence[Args]) -> None:
        assert self.pool is not None
        await self.pool.execute(INSERT_MANY, task, [json.dumps(a) for a in args])

    async def bulk_fill(self, task: Task, first_seq: int, n: int, chunk: int) -> None:
        assert self.pool is not None
        seq, end = first_seq, first_seq + n
        while seq < end:
            upto = min(end, seq + 10 * chunk)
            await self.pool.execute(FILL, task, seq, upto - 1)
            seq = upto

    async def counts(self, dsn: str) -> dict[str, int]:
        conn = await asyncpg.connect(dsn)
        try:
            pending = await conn.fetchval("SELECT count(*) FROM bench_jobs")
            last, called = await conn.fetchrow(
                "SELECT last_value, is_called FROM bench_jobs_id_seq"
            )
            inserted = last if called else 0
            return {"pending": pending, "finished": inserted - pending}
        finally:
            await conn.close()

    async def run_worker(self, dsn: str, *, drain: bool) -> None:
        await _Worker(dsn, self.concurrency, drain).run()


ADAPTER = BaselineAdapter
