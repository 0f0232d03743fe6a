"""Schedules ticked by real worker processes: several workers give exactly one job per
tick; workers killed between ticks lose none and double none; after a stop, each missed
policy enqueues what it says.

The app (apps/schedule_app.py) declares three schedules of one tick a second, one per
missed policy; each job carries its schedule's policy.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from acceptance_helpers import APPS, WorkerProcess, environment, worker_process

APP = f"{APPS}.schedule_app:runner"
POLICIES = ("latest", "skip", "all")
SECOND = timedelta(seconds=1)
pytestmark = pytest.mark.slow


@pytest.fixture
async def db(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_dsn)
    yield conn
    await conn.close()


async def jobs(db: asyncpg.Connection, schema: str) -> dict[str, list[asyncpg.Record]]:
    rows = await db.fetch(
        f"SELECT kwargs->>'policy' AS policy, run_at, created_at FROM \"{schema}\".jobs"
        " ORDER BY run_at"
    )
    found: dict[str, list[asyncpg.Record]] = {p: [] for p in POLICIES}
    for row in rows:
        found[row["policy"]].append(row)
    return found


async def wait_for_ticks(
    db: asyncpg.Connection, schema: str, count: int, *, after: datetime | None = None
) -> None:
    """Until every schedule has `count` jobs (created after `after`), within a timeout."""
    for _ in range(int(30 / 0.1)):
        found = await jobs(db, schema)
        if all(
            len([r for r in found[p] if after is None or r["created_at"] > after]) >= count
            for p in POLICIES
        ):
            return
        await db.execute("SELECT pg_sleep(0.1)")
    raise AssertionError(f"fewer than {count} ticks per schedule within 30s: {found}")


def assert_one_job_per_tick(run_ats: list[datetime]) -> None:
    assert len(run_ats) == len(set(run_ats)), f"a tick was enqueued twice: {run_ats}"
    gaps = [(a, b) for a, b in itertools.pairwise(run_ats) if b - a != SECOND]
    assert not gaps, f"ticks were lost between {gaps}"


async def stop(*workers: WorkerProcess) -> None:
    for worker in workers:
        worker.send(signal.SIGTERM)
    for worker in workers:
        assert await worker.exit_code(20) == 0, worker.log()


async def test_several_workers_enqueue_exactly_one_job_per_tick(
    pg_dsn: str, schema: str, tmp_path: Path, db: asyncpg.Connection
):
    env = environment(pg_dsn, schema)
    async with contextlib.AsyncExitStack() as stack:
        workers = [
            await stack.enter_async_context(worker_process(APP, env, tmp_path / f"w{i}.log"))
            for i in range(3)
        ]
        await wait_for_ticks(db, schema, 6)
        await stop(*workers)
    for policy, rows in (await jobs(db, schema)).items():
        assert len(rows) >= 6, policy
        assert_one_job_per_tick([r["run_at"] for r in rows])


async def test_workers_killed_between_ticks_lose_no_tick_and_double_none(
    pg_dsn: str, schema: str, tmp_path: Path, db: asyncpg.Connection
):
    env = environment(pg_dsn, schema) | {"TR_MISSED_AFTER": "30"}  # slow starts are on time
    async with contextlib.AsyncExitStack() as stack:
        spawned = 0

        async def spawn() -> WorkerProcess:
            nonlocal spawned
            spawned += 1
            path = tmp_path / f"w{spawned}.log"
            return await stack.enter_async_context(worker_process(APP, env, path))

        workers = [await spawn() for _ in range(3)]
        await wait_for_ticks(db, schema, 2)
        for round_ in range(4):  # one at a time: the others go on ticking
            victim = workers.pop(0)
            victim.send(signal.SIGKILL)
            assert await victim.exit_code(10) == -signal.SIGKILL
            workers.append(await spawn())
            await wait_for_ticks(db, schema, 3 + round_)
        for victim in workers:  # all at once: nobody ticks until the new ones start
            victim.send(signal.SIGKILL)
            assert await victim.exit_code(10) == -signal.SIGKILL
        restarted = await db.fetchval("SELECT now()")
        workers = [await spawn() for _ in range(2)]
        await wait_for_ticks(db, schema, 3, after=restarted)
        await stop(*workers)
    for rows in (await jobs(db, schema)).values():
        assert_one_job_per_tick([r["run_at"] for r in rows])


async def test_after_a_stop_each_missed_policy_enqueues_what_it_says(
    pg_dsn: str, schema: str, tmp_path: Path, db: asyncpg.Connection
):
    grace = 2.5
    env = environment(pg_dsn, schema) | {"TR_MISSED_AFTER": str(grace)}
    async with worker_process(APP, env, tmp_path / "before.log") as before:
        await wait_for_ticks(db, schema, 2)
        await stop(before)
    last = {p: rows[-1]["run_at"] for p, rows in (await jobs(db, schema)).items()}
    stopped_until = max(last.values()) + timedelta(seconds=7)
    while await db.fetchval("SELECT now()") < stopped_until:  # the database's clock
        await db.execute("SELECT pg_sleep(0.1)")
    restarted = await db.fetchval("SELECT now()")
    async with worker_process(APP, env, tmp_path / "after.log") as after:
        await wait_for_ticks(db, schema, 3, after=restarted)
        await stop(after)

    found = await jobs(db, schema)
    first_pass = {}
    for policy, rows in found.items():
        assert_one_job_per_tick([r["run_at"] for r in rows if r["run_at"] > last[policy]])
        later = [r for r in rows if r["created_at"] > restarted]
        written_at = min(r["created_at"] for r in later)  # the first pass's statement
        first_pass[policy] = (
            written_at,
            [r["run_at"] for r in later if r["created_at"] == written_at],
        )

    written_at, ticks = first_pass["all"]
    assert ticks[0] == last["all"] + SECOND  # every missed tick
    assert_one_job_per_tick(ticks)

    written_at, ticks = first_pass["latest"]
    oldest = ticks[0]
    assert written_at - timedelta(seconds=grace + 1.1) <= oldest  # the most recent missed tick
    assert oldest < written_at - timedelta(seconds=grace)  # it was missed, and is the only one
    assert oldest - last["latest"] > 2 * SECOND

    written_at, ticks = first_pass["skip"]
    assert ticks[0] >= written_at - timedelta(seconds=grace + 0.1)  # none of the missed
    assert ticks[0] - last["skip"] > 2 * SECOND
