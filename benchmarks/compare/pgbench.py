"""The database-side ceiling: pgbench running benchmarks/pgbench/claim_delete.sql.

    python -m benchmarks.compare.pgbench [--dsn DSN] [--seconds 10] [--rows 400000]

Creates a fresh database with the baseline's table, fills it (untimed), VACUUM ANALYZE +
CHECKPOINT, then ``pgbench -n -c 16 -j 2 -T 10 -f claim_delete.sql``: every transaction
claims 10 jobs (FOR UPDATE SKIP LOCKED) and deletes them. jobs/s = tps x 10. The run is
refused if the table ran dry (the figure would count empty transactions).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import re
import shutil
import time
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

from benchmarks.compare import dbutil
from benchmarks.compare.adapters.baseline import SCHEMA
from benchmarks.compare.config import Sizes, default_dsn

SCRIPT = Path(__file__).resolve().parents[1] / "pgbench" / "claim_delete.sql"
JOBS_PER_TX = 10


class PgbenchFailed(Exception):
    pass


def find_pgbench() -> str:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"))
    if candidates:
        return candidates[-1]
    raise PgbenchFailed("pgbench not found (install the PostgreSQL client tools)")


def command(dsn: str, sizes: Sizes) -> list[str]:
    return [
        find_pgbench(),
        "-n",
        "-c",
        str(sizes.pgbench_clients),
        "-j",
        str(sizes.pgbench_threads),
        "-T",
        str(sizes.pgbench_seconds),
        "-f",
        str(SCRIPT),
        dsn,
    ]


async def run(admin_dsn: str, sizes: Sizes, tag: str = "r1", keep: bool = False) -> dict[str, Any]:
    dbname = dbutil.safe_name(f"bench_pgbench_{tag}")
    async with dbutil.fresh_database(admin_dsn, dbname, keep=keep) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(SCHEMA)
            await conn.execute(
                "INSERT INTO bench_jobs (task, args) "
                "SELECT 'noop', jsonb_build_array(g, 0.0) FROM generate_series(1, $1) g",
                sizes.pgbench_rows,
            )
        finally:
            await conn.close()
        await dbutil.settle(dsn)
        cmd = command(dsn, sizes)
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        stdout, _ = await proc.communicate()
        elapsed = time.perf_counter() - t0
        text = stdout.decode(errors="replace")
        if proc.returncode != 0:
            raise PgbenchFailed(f"pgbench exited {proc.returncode}:\n{text}")
        match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text)
        if not match:
            raise PgbenchFailed(f"no tps in pgbench output:\n{text}")
        tps = float(match.group(1))
        conn = await asyncpg.connect(dsn)
        try:
            remaining = await conn.fetchval("SELECT count(*) FROM bench_jobs")
        finally:
            await conn.close()
        if remaining == 0:
            raise PgbenchFailed(
                f"the table ran dry ({sizes.pgbench_rows} rows): raise pgbench_rows"
            )
        deleted = sizes.pgbench_rows - remaining
        return {
            "tps": tps,
            "jobs_per_s": tps * JOBS_PER_TX,
            "deleted": deleted,
            "deleted_per_s": deleted / sizes.pgbench_seconds,
            "rows_before": sizes.pgbench_rows,
            "wall_s": elapsed,
            "command": " ".join([*cmd[:-1], dbutil.redact(dsn)]),
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", default=default_dsn())
    parser.add_argument("--seconds", type=int, default=Sizes.pgbench_seconds)
    parser.add_argument("--rows", type=int, default=Sizes.pgbench_rows)
    args = parser.parse_args(argv)
    sizes = Sizes(pgbench_seconds=args.seconds, pgbench_rows=args.rows)
    result = uvloop.run(run(args.dsn, sizes))
    for key, value in result.items():
        print(f"{key:>14}: {value:,.1f}" if isinstance(value, float) else f"{key:>14}: {value}")


if __name__ == "__main__":
    main()
