"""The claim query reads the partial claim index, so its cost does not grow with history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from taskrunner.queue import JobQueue
from taskrunner.queue.statements import statements_for

FINISHED_ROWS = 20_000
QUEUED_ROWS = 1_000


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def claim_cte(plan: dict[str, Any]) -> dict[str, Any]:
    """The plan node of the claim's inner select (the CTE "picked")."""
    (cte,) = [n for n in nodes(plan) if n.get("Subplan Name") == "CTE picked"]
    return cte


@pytest.fixture
async def long_history(pool: asyncpg.Pool, schema: str) -> str:
    """20,000 succeeded jobs and 1,000 queued ones of mixed priority, analyzed."""
    await pool.execute(
        f'INSERT INTO "{schema}".jobs (task, status, run_at, started_at, finished_at) '
        "SELECT 't', 'succeeded', now() - interval '2 hours', now() - interval '1 hour', "
        "now() - interval '1 hour' FROM generate_series(1, $1)",
        FINISHED_ROWS,
    )
    await pool.execute(
        f'INSERT INTO "{schema}".jobs (task, priority, run_at) '
        "SELECT 't', i % 3, now() - make_interval(secs => i) FROM generate_series(1, $1) AS i",
        QUEUED_ROWS,
    )
    await pool.execute(f'ANALYZE "{schema}".jobs')
    return schema


async def explain_claim(
    conn: asyncpg.Connection, sql: str, queues: list[str] | None, plan_cache_mode: str
) -> dict[str, Any]:
    """EXPLAIN the claim as a prepared statement executes it, under `plan_cache_mode`."""
    async with conn.transaction():
        await conn.execute(f"SET LOCAL plan_cache_mode = {plan_cache_mode}")
        await conn.execute(f"PREPARE claim_probe AS {sql}")
        try:
            queues_literal = "NULL" if queues is None else "'{" + ",".join(queues) + "}'"
            raw = await conn.fetchval(
                "EXPLAIN (FORMAT JSON) "
                f"EXECUTE claim_probe('{{t}}', {queues_literal}, 10, '{{30}}', 'worker')"
            )
        finally:
            await conn.execute("DEALLOCATE claim_probe")
    (explained,) = json.loads(raw)
    return explained["Plan"]


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("queues", [None, ["default"]], ids=["any-queue", "named-queue"])
async def test_claiming_from_a_long_history_reads_the_claim_index_not_the_table(
    pool: asyncpg.Pool, long_history: str, plan_cache_mode: str, queues: list[str] | None
):
    sql = statements_for(long_history)["claim_batch"]
    async with pool.acquire() as conn:
        plan = await explain_claim(conn, sql, queues, plan_cache_mode)

    inner = list(nodes(claim_cte(plan)))
    assert any(n.get("Index Name") == "jobs_claim_order" for n in inner), json.dumps(inner)
    assert not any(n["Node Type"] == "Sort" for n in inner), json.dumps(inner)
    # The settings of paused and limited queues (a table of a few rows) are read whole.
    scans = [n for n in nodes(plan) if n["Node Type"] == "Seq Scan"]
    assert all(n["Relation Name"] == "queues" for n in scans), json.dumps(plan)


async def explain(conn: asyncpg.Connection, sql: str, *args: Any) -> dict[str, Any]:
    raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    (explained,) = json.loads(raw)
    return explained["Plan"]


@pytest.mark.parametrize("batch", [16, 200])
@pytest.mark.parametrize("statement", ["complete_many", "fail_many", "extend_leases"])
async def test_acks_reach_their_rows_by_primary_key_with_statistics_taken_while_nothing_ran(
    pool: asyncpg.Pool, long_history: str, statement: str, batch: int
):
    queue = JobQueue(pool, long_history)
    claimed = await queue.claim(["t"], limit=batch, owner="w")
    ids = [j.id for j in claimed]
    leases = [j.lease_id for j in claimed]
    extra: dict[str, tuple[Any, ...]] = {
        "complete_many": (["null"] * batch,),
        "fail_many": (["boom"] * batch, [None] * batch),
        "extend_leases": ([30.0] * batch,),
    }
    sql = statements_for(long_history)[statement]
    async with pool.acquire() as conn, conn.transaction():
        plan = await explain(conn, sql, ids, leases, *extra[statement])

    scans = [n for n in nodes(plan) if "Index Name" in n or n["Node Type"] == "Seq Scan"]
    assert [n.get("Index Name") for n in scans] == ["jobs_pkey"], json.dumps(plan)


async def test_rescuing_expired_leases_reads_the_lease_expiry_index(
    pool: asyncpg.Pool, long_history: str
):
    sql = statements_for(long_history)["rescue_expired"]
    async with pool.acquire() as conn, conn.transaction():
        plan = await explain(conn, sql, 100)

    assert any(n.get("Index Name") == "jobs_lease_expiry" for n in nodes(plan)), json.dumps(plan)
    assert not any(n["Node Type"] == "Seq Scan" for n in nodes(plan)), json.dumps(plan)


NEVER_ANALYSED_QUEUED_ROWS = 50_000


@pytest.fixture
async def never_analysed_backlog(pool: asyncpg.Pool, schema: str) -> str:
    """50,000 queued jobs of mixed priority in a table that was never analysed (and whose
    autovacuum, which would analyse it, is off)."""
    await pool.execute(
        f'ALTER TABLE "{schema}".jobs SET (autovacuum_enabled = off, '
        "toast.autovacuum_enabled = off)"
    )
    await pool.execute(
        f'INSERT INTO "{schema}".jobs (task, priority, run_at) '
        "SELECT 't', i % 3, now() - make_interval(secs => i) FROM generate_series(1, $1) AS i",
        NEVER_ANALYSED_QUEUED_ROWS,
    )
    analysed = await pool.fetchrow(
        "SELECT last_analyze, last_autoanalyze, c.reltuples FROM pg_stat_user_tables AS s "
        "JOIN pg_class AS c ON c.oid = s.relid WHERE s.schemaname = $1 AND s.relname = 'jobs'",
        schema,
    )
    assert analysed["last_analyze"] is None
    assert analysed["last_autoanalyze"] is None
    assert analysed["reltuples"] < 0  # never analysed nor vacuumed
    return schema


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("queues", [None, ["default"]], ids=["any-queue", "named-queue"])
async def test_claiming_from_a_never_analysed_backlog_walks_the_claim_index_without_sorting(
    pool: asyncpg.Pool, never_analysed_backlog: str, plan_cache_mode: str, queues: list[str] | None
):
    sql = statements_for(never_analysed_backlog)["claim_batch"]
    async with pool.acquire() as conn:
        plan = await explain_claim(conn, sql, queues, plan_cache_mode)

    inner = list(nodes(claim_cte(plan)))
    scans = [n for n in inner if "Scan" in n["Node Type"] and n.get("Relation Name") != "queues"]
    assert [(n["Node Type"], n.get("Index Name")) for n in scans] == [
        ("Index Scan", "jobs_claim_order")
    ], json.dumps(inner)
    assert not any(n["Node Type"] == "Sort" for n in inner), json.dumps(inner)


@pytest.mark.parametrize(
    ("statement", "args"),
    [
        ("claim_batch", (["t"], None, 10, [30.0], "w")),
        ("claim_limited", ("q", ["t"], 10, [30.0], "w", [], [])),
        ("limited_queues", ()),
    ],
)
async def test_the_claims_cost_too_little_for_jit_in_a_workers_session(
    pg_dsn: str, long_history: str, statement: str, args: tuple[Any, ...]
):
    """A worker's claim session plans with enable_seqscan off: a sequential scan left in
    a plan, even of a table of three rows, costs it past jit_above_cost, and every claim
    would be compiled (a third of a second each)."""
    from taskrunner.db import CLAIM_SESSION_SETTINGS

    sql = statements_for(long_history)[statement]
    conn = await asyncpg.connect(pg_dsn, server_settings=CLAIM_SESSION_SETTINGS)
    try:
        jit_above = float(await conn.fetchval("SHOW jit_above_cost"))
        plan = await explain(conn, sql, *args)
    finally:
        await conn.close()

    assert plan["Total Cost"] < jit_above, json.dumps(plan)
