"""The worker: what it claims, how much at once, when it wakes, when it stops, and that it
survives losing its database connections."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import pytest
from worker_helpers import (
    Concurrency,
    background_worker,
    open_runner,
    row,
    run_until_idle,
)

from taskrunner import JobStatus, TaskRunner, current_job
from taskrunner.queue import JobQueue, NewJob


async def test_a_worker_claims_only_the_tasks_it_has_registered(tr: TaskRunner):
    @tr.task(name="mine")
    async def mine() -> str:
        return "done"

    foreign = (await tr.job_queue.enqueue(NewJob(task="other"))).job
    own = await mine.enqueue()

    await run_until_idle(tr)

    assert (await tr.get_job(own.id)).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]
    untouched = await row(tr, foreign.id)
    assert (untouched.status, untouched.attempts, untouched.started_at) == ("queued", 0, None)


async def test_a_worker_never_runs_more_jobs_at_once_than_its_concurrency(
    tr: TaskRunner, monkeypatch: pytest.MonkeyPatch
):
    meter = Concurrency()

    @tr.task
    async def slowish(i: int) -> int:
        with meter.running(i):
            await asyncio.sleep(0.1)
        return i

    limits: list[tuple[int, int]] = []
    real_claim = JobQueue.claim

    async def spy(self: JobQueue, *args: Any, **kwargs: Any) -> Any:
        claimed = await real_claim(self, *args, **kwargs)
        limits.append((kwargs["limit"], len(claimed)))
        return claimed

    monkeypatch.setattr(JobQueue, "claim", spy)  # the worker claims on a queue of its own
    await tr.enqueue_many(slowish, list(range(10)))

    await run_until_idle(tr, concurrency=4)

    assert meter.peak == 4
    assert sorted(meter.started) == list(range(10))
    assert limits[0] == (4, 4), "the first claim fills every free slot in one batch"
    assert all(limit <= 4 for limit, _ in limits)
    assert all(got <= limit for limit, got in limits)


async def test_a_worker_given_queues_claims_only_from_those_queues(tr: TaskRunner):
    @tr.task
    async def where() -> str:
        job = current_job()
        assert job is not None
        return job.queue

    in_a = await where.enqueue(queue="a")
    in_c = await where.enqueue(queue="c")
    in_b = await where.enqueue(queue="b")

    await run_until_idle(tr, queues=("a", "c"))

    assert await tr.result(in_a.id, timeout=10) == "a"
    assert await tr.result(in_c.id, timeout=10) == "c"
    assert (await row(tr, in_b.id)).status == "queued"


async def test_an_idle_worker_wakes_on_notify_long_before_its_poll_interval(tr: TaskRunner):
    started: dict[int, float] = {}

    @tr.task
    async def note() -> None:
        job = current_job()
        assert job is not None
        started[job.job_id] = time.monotonic()

    async with background_worker(tr, poll_interval=30.0):
        first = await note.enqueue()
        await tr.wait(first.id, timeout=10)  # the worker is up, listening, and now idle
        await asyncio.sleep(0.3)

        enqueued_at = time.monotonic()
        second = await note.enqueue()
        await tr.wait(second.id, timeout=5)

    assert started[second.id] - enqueued_at < 1.0


async def test_a_delayed_job_runs_once_it_is_due_and_not_before(tr: TaskRunner):
    @tr.task
    async def later() -> None:
        pass

    async with background_worker(tr, poll_interval=0.05):
        job = await later.enqueue(delay=0.5)
        done = await tr.wait(job.id, timeout=10)

    assert done.status is JobStatus.SUCCEEDED
    assert done.started_at is not None
    assert (done.started_at - done.created_at).total_seconds() >= 0.5


async def test_stop_when_idle_returns_although_delayed_and_paused_jobs_remain(tr: TaskRunner):
    @tr.task
    async def noop() -> None:
        pass

    runnable = await noop.enqueue()
    delayed = await noop.enqueue(delay=60)
    paused = await noop.enqueue()
    assert await tr.pause(paused.id)

    started = time.monotonic()
    await run_until_idle(tr, timeout=10, poll_interval=0.05)

    assert time.monotonic() - started < 5
    assert (await row(tr, runnable.id)).status == "succeeded"
    assert (await row(tr, delayed.id)).status == "queued"
    assert (await row(tr, paused.id)).status == "paused"


async def test_stop_when_idle_waits_for_running_jobs_to_finish(tr: TaskRunner):
    @tr.task
    async def nap(seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    short = await nap.enqueue(0.05)
    long = await nap.enqueue(0.6)

    await run_until_idle(tr, concurrency=2)

    assert (await row(tr, short.id)).status == "succeeded"
    assert (await row(tr, long.id)).status == "succeeded"


async def test_a_handlers_return_value_is_stored_and_read_back_by_result(tr: TaskRunner):
    @tr.task
    async def compute(n: int) -> dict[str, Any]:
        return {"n": n, "squares": [i * i for i in range(n)], "label": "ok"}

    job = await compute.enqueue(4)
    await run_until_idle(tr)

    assert await tr.result(job.id, timeout=10) == {"n": 4, "squares": [0, 1, 4, 9], "label": "ok"}
    assert (await tr.get_job(job.id)).result == {  # type: ignore[union-attr]
        "n": 4,
        "squares": [0, 1, 4, 9],
        "label": "ok",
    }


async def test_a_result_that_cannot_be_stored_as_json_fails_the_job_without_retrying(
    tr: TaskRunner,
):
    @tr.task(max_attempts=3)
    async def unstorable() -> object:
        return object()

    job = await unstorable.enqueue()
    await run_until_idle(tr)

    failed = await row(tr, job.id)
    assert (failed.status, failed.attempts, failed.result) == ("failed", 1, None)
    assert failed.last_error is not None
    assert "not JSON-encodable" in failed.last_error


async def test_stored_arguments_that_no_longer_fit_the_handler_fail_the_job_without_retrying(
    tr: TaskRunner,
):
    ran: list[int] = []

    @tr.task(name="typed", max_attempts=3)
    async def typed(n: int) -> int:
        ran.append(n)
        return n

    stale = (await tr.job_queue.enqueue(NewJob(task="typed", args=b'["not a number"]'))).job
    await run_until_idle(tr)

    failed = await row(tr, stale.id)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.last_error is not None
    assert "no longer fit" in failed.last_error
    assert ran == []


async def test_a_worker_survives_losing_every_database_connection_while_idle(
    pg_dsn: str, schema: str
):
    app_name = f"tr_reconnect_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in pg_dsn else "?"
    worker_dsn = f"{pg_dsn}{separator}application_name={app_name}"

    async with open_runner(worker_dsn, schema) as tr:

        @tr.task(name="ping")
        async def ping(n: int) -> int:
            return n

        async with background_worker(tr, poll_interval=0.2, rescue_interval=0.2):
            first = await ping.enqueue(1)
            assert await tr.result(first.id, timeout=10) == 1

            admin = await asyncpg.connect(pg_dsn)
            try:
                terminated = await admin.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = $1 "
                    "AND pid <> pg_backend_pid()",
                    app_name,
                )
                assert len(terminated) >= 3, "pool, LISTEN and lease connections were cut"
                await asyncio.sleep(0.3)
            finally:
                await admin.close()

            async with open_runner(pg_dsn, schema) as enqueuer:
                enqueuer.task(name="ping")(ping.func)
                second = await enqueuer.enqueue("ping", 2)
                assert await enqueuer.result(second.id, timeout=15) == 2


async def test_a_job_running_while_the_database_connections_are_cut_still_succeeds_once(
    pg_dsn: str, schema: str
):
    app_name = f"tr_reconnect_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in pg_dsn else "?"
    worker_dsn = f"{pg_dsn}{separator}application_name={app_name}"
    runs: list[int] = []
    started = asyncio.Event()

    # Long enough a lease for the reconnect to get a renewal through on a loaded machine;
    # the handler outlives it, so only a renewal after the cut keeps it.
    async with open_runner(worker_dsn, schema) as tr:

        @tr.task(name="slow", lease=3.0)
        async def slow() -> str:
            runs.append(1)
            started.set()
            await asyncio.sleep(3.5)
            return "done"

        async with open_runner(pg_dsn, schema) as observer:
            observer.task(name="slow")(slow.func)
            job = await observer.enqueue("slow")
            async with background_worker(tr, poll_interval=0.2, rescue_interval=0.2):
                await asyncio.wait_for(started.wait(), 10)
                admin = await asyncpg.connect(pg_dsn)
                try:
                    terminated = await admin.fetch(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND application_name = $1",
                        app_name,
                    )
                finally:
                    await admin.close()
                assert len(terminated) >= 3
                done = await observer.wait(job.id, timeout=15)

    assert (done.status, done.attempts, done.result) == (JobStatus.SUCCEEDED, 1, "done")
    assert runs == [1]
