"""runner.sync: the runner's verbs as blocking calls for code without an event loop, over
one pool on a private loop thread, refused inside a running loop, safe at exit."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import drop_schema, new_schema_name

from taskrunner import JobStatus, TaskRunner, TaskRunnerError


@pytest.fixture
def sync_runner(pg_dsn: str) -> Iterator[TaskRunner]:
    """A runner with two tasks on a schema of the test's own, used from plain code."""
    runner = TaskRunner(pg_dsn, schema=new_schema_name())

    @runner.task(name="double")
    def double(n: int) -> int:
        return n * 2

    @runner.task(name="slow")
    async def slow() -> None:
        await asyncio.sleep(30)

    yield runner
    runner.sync.close()
    asyncio.run(drop_schema(pg_dsn, runner.schema))


def run_worker(runner: TaskRunner) -> None:
    asyncio.run(
        asyncio.wait_for(
            runner.run_worker(stop_when_idle=True, poll_interval=0.05, handle_signals=False), 30
        )
    )


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "taskrunner-sync"]


def test_enqueue_and_result_work_without_an_event_loop(sync_runner: TaskRunner):
    job = sync_runner.sync.enqueue("double", 21)
    assert sync_runner.sync.get_job(job.id).status is JobStatus.QUEUED  # type: ignore[union-attr]

    run_worker(sync_runner)

    assert sync_runner.sync.result(job.id, timeout=5) == 42
    assert sync_runner.sync.wait(job.id, timeout=5).status is JobStatus.SUCCEEDED


def test_every_call_shares_one_pool_and_one_loop_thread(sync_runner: TaskRunner):
    front = sync_runner.sync
    front.enqueue("double", 1)
    pool = front._runner._pool  # type: ignore[union-attr]
    jobs = front.enqueue_many("double", [(2,), (3,)])
    front.list_jobs(task="double")
    front.stats()

    assert front._runner._pool is pool  # type: ignore[union-attr]
    assert len(loop_threads()) == 1
    assert [j.args for j in jobs] == [[2], [3]]


def test_the_job_verbs_work(sync_runner: TaskRunner):
    front = sync_runner.sync
    job = front.enqueue("double", 1)

    assert front.pause(job.id) is True
    assert front.resume(job.id) is True
    assert front.cancel(job.id) is True
    assert front.retry(job.id) is True
    assert front.stats()["default"]["queued"] == 1
    assert [j.id for j in front.list_jobs(status="queued")] == [job.id]


def test_list_jobs_reads_the_archive_when_asked(sync_runner: TaskRunner, pg_dsn: str):
    front = sync_runner.sync
    job = front.enqueue("double", 1)
    front.cancel(job.id)

    async def archive() -> None:
        async with TaskRunner(pg_dsn, schema=sync_runner.schema) as other:
            await other.cleanup(cancelled="archive")

    asyncio.run(archive())

    assert front.list_jobs() == []
    assert [j.id for j in front.list_jobs(archived=True)] == [job.id]


def test_a_with_block_closes_the_pool_and_the_thread_and_the_front_opens_again(
    sync_runner: TaskRunner,
):
    with sync_runner.sync as front:
        front.enqueue("double", 1)
        assert front.is_open
    assert not sync_runner.sync.is_open
    assert loop_threads() == []

    assert sync_runner.sync.stats()["default"]["queued"] == 1


def test_errors_of_the_runner_come_through_as_they_are(sync_runner: TaskRunner):
    with pytest.raises(TaskRunnerError, match="unknown task"):
        sync_runner.sync.enqueue("missing")


async def test_inside_a_running_event_loop_it_refuses_with_a_clear_error(
    sync_runner: TaskRunner,
):
    with pytest.raises(TaskRunnerError, match=r"inside a running event loop.*await runner.get_job"):
        sync_runner.sync.get_job(1)
    assert not sync_runner.sync.is_open


def test_an_asyncpg_connection_is_refused(sync_runner: TaskRunner):
    with pytest.raises(TaskRunnerError, match="connection"):
        sync_runner.sync.enqueue("double", 1, connection=object())


def test_a_script_that_never_closes_the_front_exits_cleanly(pg_dsn: str, tmp_path: Path):
    schema = new_schema_name()
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from taskrunner import TaskRunner

            runner = TaskRunner({pg_dsn!r}, schema={schema!r})

            @runner.task(name="double")
            def double(n: int) -> int:
                return n * 2

            print("job", runner.sync.enqueue("double", 2).id)
            """
        )
    )
    try:
        proc = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        asyncio.run(drop_schema(pg_dsn, schema))

    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "job 1\n", "")
