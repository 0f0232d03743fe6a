"""Queue controls hold across worker processes: several real `taskrunner worker`
processes share each queue, and every execution records its start and end
(apps/queues_app.py). Whatever the number of workers, a capped queue never runs more
than its cap, a serial queue runs one job at a time in order, a rate limit is never
exceeded, a paused queue starts nothing and a resumed one drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from acceptance_helpers import APPS, WorkerProcess, environment, import_app, mirror, worker_process

from taskrunner import RateLimit, TaskRunner

APP = f"{APPS}.queues_app:runner"
DRAIN_TIMEOUT = 60.0
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Run:
    seq: int
    job: int
    pid: int
    start: float
    end: float | None  # None: never returned (its worker was killed)


def runs(events_dir: Path, queue: str) -> list[Run]:
    """Every execution in `queue` so far, in start order."""
    starts: dict[tuple[int, int], dict[str, float | int]] = {}
    ends: dict[tuple[int, int], float] = {}
    for path in events_dir.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event["queue"] != queue:
                continue
            key = (event["pid"], event["job"])
            if event["event"] == "start":
                starts[key] = event
            else:
                ends[key] = event["at"]
    found = [
        Run(int(e["seq"]), int(e["job"]), int(e["pid"]), float(e["at"]), ends.get(key))
        for key, e in starts.items()
    ]
    return sorted(found, key=lambda r: r.start)


def peak_overlap(found: list[Run]) -> int:
    """The most executions running at one moment (an end before a start at the same
    instant does not overlap it)."""
    points = []
    for r in found:
        assert r.end is not None, f"execution of job {r.job} never ended"
        points += [(r.start, 1), (r.end, -1)]
    now = peak = 0
    for _, step in sorted(points, key=lambda p: (p[0], p[1])):
        now += step
        peak = max(peak, now)
    return peak


def most_in_any_window(times: list[float], width: float) -> int:
    ordered = sorted(times)
    most = 0
    first = 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= width:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.fixture
def events_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "events"
    folder.mkdir()
    return folder


@pytest.fixture
async def tr(
    pg_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TaskRunner]:
    app = import_app("queues_app", monkeypatch)
    async with TaskRunner(pg_dsn, schema=schema) as runner:
        mirror(runner, [app.record])
        yield runner


@contextlib.asynccontextmanager
async def workers(
    count: int, pg_dsn: str, schema: str, events_dir: Path, tmp_path: Path, concurrency: int = 4
) -> AsyncIterator[list[WorkerProcess]]:
    env = environment(pg_dsn, schema)
    env["TR_EVENTS_DIR"] = str(events_dir)
    async with contextlib.AsyncExitStack() as stack:
        started = [
            await stack.enter_async_context(
                worker_process(
                    APP, env, tmp_path / f"worker-{i}.log", "--concurrency", str(concurrency)
                )
            )
            for i in range(count)
        ]
        yield started


async def enqueue(tr: TaskRunner, queue: str, count: int, hold: float) -> list[int]:
    jobs = await tr.enqueue_many(
        "limits.record", [{"seq": i, "hold": hold} for i in range(count)], queue=queue
    )
    return [j.id for j in jobs]


async def drained(tr: TaskRunner, ids: list[int], procs: list[WorkerProcess]) -> None:
    """Until every job succeeded, or fail with the workers' logs."""
    try:
        await asyncio.wait_for(asyncio.gather(*(tr.wait(i) for i in ids)), DRAIN_TIMEOUT)
    except TimeoutError:
        logs = "\n".join(p.log()[-3000:] for p in procs)
        raise AssertionError(f"jobs not finished within {DRAIN_TIMEOUT}s:\n{logs}") from None
    statuses = {(await tr.get_job(i)).status for i in ids}  # type: ignore[union-attr]
    assert statuses == {"succeeded"}


async def started_at(pg_dsn: str, schema: str, ids: list[int]) -> list[float]:
    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = await conn.fetch(
            f'SELECT extract(epoch FROM started_at)::float8 AS t FROM "{schema}".jobs '
            "WHERE id = ANY($1::bigint[])",
            ids,
        )
    finally:
        await conn.close()
    return [r["t"] for r in rows]


async def test_a_capped_queue_never_runs_more_than_its_concurrency_across_workers(
    tr: TaskRunner, pg_dsn: str, schema: str, events_dir: Path, tmp_path: Path
):
    await tr.configure_queue("capped", concurrency=2)
    ids = await enqueue(tr, "capped", 16, hold=0.15)

    async with workers(3, pg_dsn, schema, events_dir, tmp_path) as procs:
        await drained(tr, ids, procs)

    found = runs(events_dir, "capped")
    assert len(found) >= 16  # a job may run again after a lost lease, never alongside
    assert peak_overlap(found) <= 2


async def test_a_serial_queue_runs_one_job_at_a_time_in_order_on_several_workers(
    tr: TaskRunner, pg_dsn: str, schema: str, events_dir: Path, tmp_path: Path
):
    await tr.configure_queue("serial", concurrency=1)
    ids = await enqueue(tr, "serial", 12, hold=0.05)

    async with workers(3, pg_dsn, schema, events_dir, tmp_path) as procs:
        await drained(tr, ids, procs)

    found = runs(events_dir, "serial")
    assert peak_overlap(found) == 1
    assert [r.seq for r in found] == list(range(12))


async def test_a_rate_limited_queue_never_starts_more_than_n_per_period(
    tr: TaskRunner, pg_dsn: str, schema: str, events_dir: Path, tmp_path: Path
):
    await tr.configure_queue("rated", rate_limit=RateLimit(3, per=timedelta(seconds=1)))
    ids = await enqueue(tr, "rated", 10, hold=0.0)

    async with workers(3, pg_dsn, schema, events_dir, tmp_path) as procs:
        await drained(tr, ids, procs)

    # The database's start times are the limit's own clock: strictly at most 3 a second.
    assert most_in_any_window(await started_at(pg_dsn, schema, ids), 1.0) <= 3
    # The handlers start some time after their claim, longer on a busy machine: the
    # same holds for them over half the period.
    handler_starts = [r.start for r in runs(events_dir, "rated")]
    assert most_in_any_window(handler_starts, 0.5) <= 3


async def test_a_paused_queue_starts_nothing_and_drains_once_resumed(
    tr: TaskRunner, pg_dsn: str, schema: str, events_dir: Path, tmp_path: Path
):
    assert await tr.pause_queue("held") is True
    held = await enqueue(tr, "held", 6, hold=0.0)

    async with workers(2, pg_dsn, schema, events_dir, tmp_path) as procs:
        # Work in another queue, enqueued after, finishes: the workers claim, and pass
        # the paused queue by. A second round makes sure each has polled since.
        for _ in range(2):
            await drained(tr, await enqueue(tr, "other", 4, hold=0.0), procs)
        assert runs(events_dir, "held") == []
        assert {(await tr.get_job(i)).status for i in held} == {"queued"}  # type: ignore[union-attr]

        assert await tr.resume_queue("held") is True
        await drained(tr, held, procs)

    assert len(runs(events_dir, "held")) == 6


async def test_a_serial_slot_held_by_a_killed_worker_frees_when_its_lease_runs_out(
    tr: TaskRunner, pg_dsn: str, schema: str, events_dir: Path, tmp_path: Path
):
    await tr.configure_queue("serial", concurrency=1)
    env = environment(pg_dsn, schema)
    env["TR_EVENTS_DIR"] = str(events_dir)
    (stuck,) = await tr.enqueue_many(
        "limits.record", [{"seq": 0, "hold": 3600.0, "first_only": True}], queue="serial"
    )
    stuck_id = stuck.id
    async with worker_process(APP, env, tmp_path / "doomed.log") as doomed:
        for _ in range(int(DRAIN_TIMEOUT / 0.05)):
            if runs(events_dir, "serial"):
                break
            await asyncio.sleep(0.05)
        (first,) = runs(events_dir, "serial")
        assert first.job == stuck_id
        after = await tr.enqueue("limits.record", seq=1, hold=0.0, queue="serial")
        async with workers(1, pg_dsn, schema, events_dir, tmp_path) as procs:
            doomed.send(signal.SIGKILL)
            await doomed.exit_code(10)
            await drained(tr, [stuck_id, after.id], procs)

    found = runs(events_dir, "serial")
    # The rescued job keeps its place in the queue: it runs again first, then the later one.
    again = next(r for r in found if r.job == stuck_id and r.pid != first.pid)
    second = next(r for r in found if r.job == after.id)
    assert again.start > first.start + 3.0  # not before the dead worker's lease ran out
    assert second.start >= again.start
