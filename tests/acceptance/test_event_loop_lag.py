"""CPU-bound process tasks and blocking thread tasks never stall the worker's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from acceptance_helpers import import_app

from taskrunner import JobStatus, TaskRunner

TICK = 0.01
# A job run on the loop would stall it for the whole of its 1.5 s. Shorter lags come from
# the OS: with the suite's other workers (and a child burning a core) on 2 cores, this
# process waits up to a few tenths of a second for a core now and then.
MAX_LAG = 0.6


@pytest.fixture
async def tr(pg_dsn: str, schema: str) -> AsyncIterator[TaskRunner]:
    async with TaskRunner(pg_dsn, schema=schema) as runner:
        yield runner


async def test_the_loop_keeps_ticking_while_a_process_task_burns_cpu_and_a_thread_task_blocks(
    tr: TaskRunner, monkeypatch: pytest.MonkeyPatch
):
    app = import_app("lag_app", monkeypatch)
    burn = tr.task(executor="process")(app.burn.func)
    block = tr.task(executor="thread")(app.block.func)
    burned = await burn.enqueue(1.5)
    blocked = await block.enqueue(1.5)

    loop = asyncio.get_running_loop()
    worker = asyncio.create_task(
        tr.run_worker(
            concurrency=2,
            stop_when_idle=True,
            poll_interval=0.05,
            process_pool_size=1,
            handle_signals=False,
        )
    )
    lags: list[float] = []
    started = loop.time()
    while not worker.done():
        before = loop.time()
        await asyncio.sleep(TICK)
        lags.append(loop.time() - before - TICK)
    await worker
    elapsed = loop.time() - started

    burn_job = await tr.get_job(burned.id)
    block_job = await tr.get_job(blocked.id)
    assert burn_job is not None
    assert block_job is not None
    assert (burn_job.status, block_job.status) == (JobStatus.SUCCEEDED, JobStatus.SUCCEEDED)
    assert burn_job.result > 0
    assert elapsed >= 1.5, "the sampler ran for the whole time both jobs ran"
    assert len(lags) > 50
    assert max(lags) < MAX_LAG, f"worst event-loop lag {max(lags):.3f}s"
