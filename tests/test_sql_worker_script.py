"""examples/sql_worker.psql, the worker in plain SQL, run by psql against a schema of the
test's own: it completes what it can compute and fails what it cannot."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from conftest import need_binary

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "sql_worker.psql"


async def test_the_psql_worker_completes_and_fails_jobs_through_the_sql_interface(
    pg_dsn: str, schema: str
):
    psql = need_binary("psql", "the SQL worker example runs in psql")
    conn = await asyncpg.connect(pg_dsn)
    try:
        enqueue = f"SELECT \"{schema}\".enqueue('math.add', $1::jsonb)"
        good = [await conn.fetchval(enqueue, f"[{i}, {i * 10}]") for i in range(12)]
        bad = await conn.fetchval(enqueue, '["one", 2]')

        proc = await asyncio.create_subprocess_exec(
            psql, pg_dsn, "-v", f"schema={schema}", "-f", str(SCRIPT),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 60)

        assert proc.returncode == 0, err.decode()
        assert "sql worker: 12 completed, 1 failed" in err.decode()
        rows = await conn.fetch(
            f'SELECT id, status::text, result, last_error FROM "{schema}".jobs ORDER BY id'
        )
        results = {r["id"]: (r["status"], r["result"]) for r in rows}
        assert [results[i] for i in good] == [("succeeded", str(i * 11)) for i in range(12)]
        failed = next(r for r in rows if r["id"] == bad)
        assert failed["status"] == "queued"
        assert "invalid input syntax" in failed["last_error"]
    finally:
        await conn.close()
