"""Workers cut off from their database while a job runs: frozen (SIGSTOP) past the lease
and then resumed (SIGCONT), or behind a network black hole (a partition, a half-open
connection). The job runs elsewhere meanwhile, and the stale worker fences itself. From
the recorded history of both workers: the two runs never overlap, the stale handler does
no more work, and the stale worker acks nothing."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from acceptance_helpers import (
    APPS,
    black_hole_proxy,
    environment,
    import_app,
    mirror,
    worker_process,
)

from taskrunner import JobStatus, TaskRunner

pytestmark = pytest.mark.slow

APP = f"{APPS}.fencing_app:runner"
WORKER_OPTIONS = ("--poll-interval", "0.1", "--shutdown-timeout", "5")
LEASE = 2.0  # fencing_app's


@dataclass(frozen=True)
class Event:
    kind: str
    pid: int
    attempt: int
    at: float


def history(path: Path) -> list[Event]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        kind, pid, attempt, at = line.split()
        events.append(Event(kind, int(pid), int(attempt), float(at)))
    return events


async def until_recorded(path: Path, kind: str, pid: int, timeout: float) -> Event:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in history(path):
            if (event.kind, event.pid) == (kind, pid):
                return event
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {kind} from {pid} within {timeout}s: {history(path)}")


@pytest.fixture
async def tr(
    pg_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TaskRunner]:
    app = import_app("fencing_app", monkeypatch)
    async with TaskRunner(pg_dsn, schema=schema) as runner:
        mirror(runner, [app.steps, app.process_steps])
        yield runner


async def test_a_worker_frozen_past_its_lease_fences_itself_on_resume_and_the_runs_never_overlap(
    tr: TaskRunner, pg_dsn: str, schema: str, tmp_path: Path
):
    path = tmp_path / "history"
    env = environment(pg_dsn, schema)
    job = await tr.enqueue("acceptance.steps", str(path), 30.0, 2.0)

    async with worker_process(APP, env, tmp_path / "stale.log", *WORKER_OPTIONS) as stale:
        await until_recorded(path, "S", stale.pid, 20)
        stale.send(signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            async with worker_process(APP, env, tmp_path / "fresh.log", *WORKER_OPTIONS) as fresh:
                try:
                    second = await until_recorded(path, "S", fresh.pid, 20)  # taken over
                finally:
                    stale.send(signal.SIGCONT)
                resumed = time.monotonic()
                done = await tr.wait(job.id, timeout=20)
                await until_recorded(path, "C", stale.pid, 10)
                for worker in (stale, fresh):
                    worker.send(signal.SIGTERM)
                assert await fresh.exit_code(15) == 0
        finally:
            with contextlib.suppress(ProcessLookupError):  # never leave it frozen
                stale.send(signal.SIGCONT)
        assert await stale.exit_code(15) == 0

    events = history(path)
    stale_events = [e for e in events if e.pid == stale.pid]
    fresh_events = [e for e in events if e.pid == fresh.pid]
    # The stale handler did nothing after it was frozen: resumed, it was cancelled at once.
    assert [e.kind for e in stale_events if e.at > frozen] == ["C"]
    (cancelled,) = [e for e in stale_events if e.kind == "C"]
    assert cancelled.at - resumed < 1.0
    # Its work all came before the takeover, the fresh run after it: no overlap.
    last_stale_work = max(e.at for e in stale_events if e.kind in "SW")
    assert last_stale_work < second.at
    assert fresh_events[0].kind == "S"
    assert fresh_events[-1].kind == "D"
    # The job's outcome is the fresh run's; the stale worker sent no ack at all.
    assert (done.status, done.attempts, done.result) == (JobStatus.SUCCEEDED, 2, fresh.pid)
    assert "ignored" not in stale.log()
    assert "lost its lease" in stale.log()


async def test_a_worker_cut_off_by_a_black_hole_stops_its_handler_before_its_lease_can_run_out(
    tr: TaskRunner, pg_dsn: str, schema: str, tmp_path: Path
):
    path = tmp_path / "history"
    job = await tr.enqueue("acceptance.steps", str(path), 30.0, 1.0)

    async with black_hole_proxy(pg_dsn) as proxy:
        cut_env = environment(proxy.dsn(pg_dsn), schema)
        async with worker_process(APP, cut_env, tmp_path / "cut.log", *WORKER_OPTIONS) as cut:
            await until_recorded(path, "S", cut.pid, 20)
            await proxy.block()  # no byte passes, no connection closes: a half-open link
            blocked = time.monotonic()
            stopped = await until_recorded(path, "C", cut.pid, LEASE + 5)
            assert stopped.at < blocked + LEASE  # its last renewal came before the block

            env = environment(pg_dsn, schema)
            async with worker_process(APP, env, tmp_path / "fresh.log", *WORKER_OPTIONS) as fresh:
                done = await tr.wait(job.id, timeout=20)
                fresh.send(signal.SIGTERM)
                assert await fresh.exit_code(15) == 0
            await proxy.heal()
            cut.send(signal.SIGTERM)
            assert await cut.exit_code(15) == 0

    events = history(path)
    cut_work = [e.at for e in events if e.pid == cut.pid and e.kind in "SWD"]
    (fresh_start,) = [e.at for e in events if e.pid == fresh.pid and e.kind == "S"]
    assert max(cut_work) < fresh_start
    assert (done.status, done.attempts, done.result) == (JobStatus.SUCCEEDED, 2, fresh.pid)
    assert "ignored" not in cut.log()


def dead_or_zombie(pid: int) -> bool:
    """A child of a frozen parent stays a zombie until the parent reaps it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def test_a_process_handlers_child_fences_itself_while_its_worker_is_frozen(
    tr: TaskRunner, pg_dsn: str, schema: str, tmp_path: Path
):
    path = tmp_path / "history"
    env = environment(pg_dsn, schema)
    job = await tr.enqueue("acceptance.process_steps", str(path), 30.0, 1.0)

    async with worker_process(APP, env, tmp_path / "stale.log", *WORKER_OPTIONS) as stale:
        child = (await until_recorded_by_any(path, "S", 30)).pid
        stale.send(signal.SIGSTOP)  # the worker only: its child is not frozen
        frozen = time.monotonic()
        try:
            deadline = frozen + LEASE + 5
            while not dead_or_zombie(child):
                assert time.monotonic() < deadline, "the child of a frozen worker kept running"
                await asyncio.sleep(0.02)
            async with worker_process(APP, env, tmp_path / "fresh.log", *WORKER_OPTIONS) as fresh:
                done = await tr.wait(job.id, timeout=30)
                fresh.send(signal.SIGTERM)
                assert await fresh.exit_code(15) == 0
        finally:
            with contextlib.suppress(ProcessLookupError):
                stale.send(signal.SIGCONT)
        stale.send(signal.SIGTERM)
        assert await stale.exit_code(15) == 0

    events = history(path)
    stale_work = [e.at for e in events if e.pid == child]
    (fresh_start,) = [e for e in events if e.pid != child and e.kind == "S"]
    assert max(stale_work) < frozen + LEASE  # stopped before the lease could run out
    assert max(stale_work) < fresh_start.at
    assert (done.status, done.attempts, done.result) == (JobStatus.SUCCEEDED, 2, fresh_start.pid)


async def until_recorded_by_any(path: Path, kind: str, timeout: float) -> Event:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in history(path):
            if event.kind == kind:
                return event
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {kind} within {timeout}s")
