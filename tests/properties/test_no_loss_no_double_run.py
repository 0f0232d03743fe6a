"""Nothing is lost and nothing runs twice at the same time, whatever the mix of jobs,
handler outcomes, concurrency and number of workers.

Hypothesis picks the jobs (1-60, each with an outcome), the concurrency (1-8) and the
number of workers (1-3). The workers, each on a runner (and pool) of its own, run side by
side on one event loop until each is idle. Every example gets a fresh schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field

import asyncpg
import pytest
import tenacity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskrunner import JobStatus, Retry, RetryLater, TaskRunner, current_job

SUCCEED = "succeed"
FAIL_ONCE = "fail_once"
RETRY_LATER_ONCE = "retry_later_once"
ALWAYS_RETRY_LATER = "always_retry_later"
OUTCOMES = st.sampled_from([SUCCEED, FAIL_ONCE, RETRY_LATER_ONCE, ALWAYS_RETRY_LATER])
MAX_ATTEMPTS = 3
TASK = "prop.work"


@dataclass
class Log:
    running: set[int] = field(default_factory=set)
    overlaps: list[tuple[int, int]] = field(default_factory=list)  # (job id, attempt)
    starts: list[tuple[int, int]] = field(default_factory=list)
    successes: list[tuple[int, int]] = field(default_factory=list)


def register(runner: TaskRunner, log: Log) -> None:
    async def work(index: int, outcome: str) -> int:
        ctx = current_job()
        assert ctx is not None
        key = (ctx.job_id, ctx.attempt)
        if ctx.job_id in log.running:
            log.overlaps.append(key)
        log.running.add(ctx.job_id)
        log.starts.append(key)
        try:
            await asyncio.sleep((index % 4) * 0.002)
            if outcome == FAIL_ONCE and ctx.attempt == 1:
                raise RuntimeError("first attempt fails")
            if outcome == RETRY_LATER_ONCE and ctx.attempt == 1:
                raise RetryLater(0)
            if outcome == ALWAYS_RETRY_LATER:
                raise RetryLater(0)
        finally:
            log.running.discard(ctx.job_id)
        log.successes.append(key)
        return index

    runner.task(name=TASK, retry=Retry(max_attempts=MAX_ATTEMPTS, wait=tenacity.wait_fixed(0)))(
        work
    )


async def scenario(dsn: str, outcomes: list[str], concurrency: int, workers: int) -> None:
    schema = f"t_prop_{uuid.uuid4().hex[:12]}"
    log = Log()
    runners = [TaskRunner(dsn, schema=schema, pool_size=4) for _ in range(workers)]
    try:
        async with contextlib.AsyncExitStack() as stack:
            for runner in runners:
                register(runner, log)
                await stack.enter_async_context(runner)
            jobs = await runners[0].enqueue_many(
                TASK, [(i, outcome) for i, outcome in enumerate(outcomes)]
            )

            await asyncio.wait_for(
                asyncio.gather(
                    *(
                        r.run_worker(
                            concurrency=concurrency,
                            stop_when_idle=True,
                            poll_interval=0.05,
                            rescue_interval=0.5,
                            handle_signals=False,
                        )
                        for r in runners
                    )
                ),
                60,
            )
            final = {j.id: await runners[0].get_job(j.id) for j in jobs}
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    assert log.overlaps == [], "a job ran twice at the same time"
    assert len(set(log.starts)) == len(log.starts), "an attempt number was used twice"
    for index, (job, outcome) in enumerate(zip(jobs, outcomes, strict=True)):
        done = final[job.id]
        assert done is not None, f"job {job.id} was lost"
        assert done.status.is_final, f"job {job.id} ended {done.status}"
        successes = [attempt for job_id, attempt in log.successes if job_id == job.id]
        if outcome == ALWAYS_RETRY_LATER:
            assert (done.status, done.attempts, successes) == (
                JobStatus.FAILED,
                MAX_ATTEMPTS,
                [],
            )
            continue
        expected_attempts = 1 if outcome == SUCCEED else 2
        assert done.status is JobStatus.SUCCEEDED, f"job {job.id} ({outcome}) ended {done.status}"
        assert successes == [expected_attempts], "the successful attempt ran exactly once"
        assert done.attempts == expected_attempts
        assert done.result == index


@pytest.mark.slow
@settings(
    max_examples=10,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    outcomes=st.lists(OUTCOMES, min_size=1, max_size=60),
    concurrency=st.integers(min_value=1, max_value=8),
    workers=st.integers(min_value=1, max_value=3),
)
def test_every_job_ends_final_and_no_job_ever_runs_twice_at_once(
    pg_dsn: str, outcomes: list[str], concurrency: int, workers: int
):
    asyncio.run(scenario(pg_dsn, outcomes, concurrency, workers))
