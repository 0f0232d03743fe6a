"""The dashboard's overview reads what indexes find, never the whole jobs table, so it
answers in milliseconds however long the history (the timing over a million jobs is
benchmarks/dashboard.py's)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from taskrunner.queue.statements import statements_for


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


@pytest.fixture
async def long_history(pool: asyncpg.Pool, schema: str) -> str:
    """20,000 jobs finished over the last week, a few live ones, analyzed."""
    await pool.execute(
        f'INSERT INTO "{schema}".jobs (task, queue, status, run_at, started_at, finished_at) '
        "SELECT 't', 'q' || (i % 3), (ARRAY['succeeded', 'failed', 'cancelled'])[1 + i % 3]"
        f"::\"{schema}\".job_status, now() - interval '8 days', now() - interval '8 days', "
        "now() - make_interval(secs => i * 30) FROM generate_series(1, 20000) AS i"
    )
    await pool.execute(
        f'INSERT INTO "{schema}".jobs (task, queue, status) '
        f"SELECT 't', 'q1', (ARRAY['queued', 'paused'])[1 + i % 2]::\"{schema}\".job_status "
        "FROM generate_series(1, 50) AS i"
    )
    await pool.execute(f'ANALYZE "{schema}".jobs')
    return schema


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_the_overview_never_scans_the_jobs_table(
    pool: asyncpg.Pool, long_history: str, plan_cache_mode: str
):
    sql = statements_for(long_history)["overview"]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"SET LOCAL plan_cache_mode = {plan_cache_mode}")
        await conn.execute(f"PREPARE overview_probe AS {sql}")
        raw = await conn.fetchval("EXPLAIN (FORMAT JSON) EXECUTE overview_probe(3600, 10000)")
        await conn.execute("DEALLOCATE overview_probe")
    (explained,) = json.loads(raw)

    scans = [n for n in nodes(explained["Plan"]) if n.get("Relation Name") == "jobs"]
    assert scans, json.dumps(explained)
    assert not [n for n in scans if n["Node Type"] == "Seq Scan"], json.dumps(scans)
    used = {n.get("Index Name") for n in nodes(explained["Plan"])}  # bitmap scans: below
    assert {"jobs_claim_order", "jobs_lease_expiry", "jobs_paused"} <= used, used
