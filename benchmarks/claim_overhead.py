"""The ordinary claim's cost with and without the check of paused and limited queues:
claim_batch as this checkout has it against claim_batch from another checkout
(`--baseline PATH`, e.g. the main branch), executed on one connection of a worker's claim
session, alternating in blocks (ABBA), against one schema with a backlog. Each cycle claims
--batch jobs and completes them; only the claims are timed.

    python -m benchmarks.claim_overhead --baseline /path/to/main [--cycles 3000] [--batch 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncpg

from taskrunner.queue import Lease

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
BLOCK = 100


async def main_async(dsn: str, baseline: Path, cycles: int, batch: int) -> None:
    from taskrunner.db import CLAIM_SESSION_SETTINGS, Migrator
    from taskrunner.db.identifiers import substitute_schema
    from taskrunner.queue import Completion, JobQueue, NewJob
    from taskrunner.queue.statements import parse_statements, statements_for

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    old_text = (baseline / "taskrunner" / "queue" / "sql" / "jobs_claim.sql").read_text()
    (old,) = [s for s in parse_statements(old_text, "baseline") if s.name == "claim_batch"]
    sql = {
        "baseline": substitute_schema(old.text, schema),
        "branch": statements_for(schema)["claim_batch"],
    }
    conn = await asyncpg.connect(dsn, server_settings=CLAIM_SESSION_SETTINGS)
    try:
        await Migrator(schema).migrate(conn)
        queue = JobQueue(conn, schema)
        total = 2 * cycles * batch
        for start in range(0, total, 10_000):
            await queue.enqueue_many(
                [NewJob(task="t", args=b"[1]") for _ in range(min(10_000, total - start))]
            )
        await conn.execute(f'ANALYZE "{schema}".jobs')
        spent: dict[str, list[float]] = {"baseline": [], "branch": []}
        for block in range(2 * cycles // BLOCK):
            # ABBA: the table's dead rows grow as it runs, so neither may always go second
            variant = ("baseline", "branch", "branch", "baseline")[block % 4]
            for _ in range(BLOCK):
                t = time.perf_counter()
                rows = await conn.fetch(sql[variant], ["t"], None, batch, [30.0], "w")
                spent[variant].append(time.perf_counter() - t)
                leases = [queue_row_lease(r) for r in rows]
                await queue.complete_many([Completion(lease=lease) for lease in leases])
        for variant, times in spent.items():
            print(
                f"{variant:<8} claim of {batch}: median {statistics.median(times) * 1e3:.3f} ms, "
                f"mean {statistics.fmean(times) * 1e3:.3f} ms over {len(times)}"
            )
        ratio = statistics.median(spent["branch"]) / statistics.median(spent["baseline"])
        print(f"branch / baseline (median): {ratio:.3f}")
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await conn.close()


def queue_row_lease(record: asyncpg.Record) -> Lease:
    return Lease(job_id=record[0], lease_id=record[13])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("TASKRUNNER_DSN") or DEFAULT_DSN)
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--cycles", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args(argv)
    asyncio.run(main_async(args.dsn, args.baseline, args.cycles, args.batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
