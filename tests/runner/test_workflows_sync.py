"""runner.sync's workflow verbs: the same workflow life, from code without a loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from conftest import drop_schema, new_schema_name

from taskrunner import PermanentFailure, TaskRunner, chain


@pytest.fixture
def sync_runner(pg_dsn: str) -> Iterator[TaskRunner]:
    runner = TaskRunner(pg_dsn, schema=new_schema_name())
    yield runner
    runner.sync.close()
    asyncio.run(drop_schema(pg_dsn, runner.schema))


def test_the_workflow_verbs_work_without_an_event_loop(sync_runner: TaskRunner):
    flaky = {"fail": True}

    @sync_runner.task(name="inc")
    def inc(n: int) -> int:
        return n + 1

    @sync_runner.task(name="check", max_attempts=1)
    def check(n: int) -> int:
        if flaky["fail"]:
            raise PermanentFailure("not yet")
        return n

    def work() -> None:
        asyncio.run(
            asyncio.wait_for(
                sync_runner.run_worker(
                    stop_when_idle=True, poll_interval=0.05, handle_signals=False
                ),
                30,
            )
        )

    wf = sync_runner.sync.enqueue_workflow(chain(inc.s(1), check.s(), inc.s()))
    assert sync_runner.sync.get_workflow(wf.id).status == "running"  # type: ignore[union-attr]
    work()
    assert sync_runner.sync.wait_workflow(wf.id, timeout=10).status == "failed"
    flaky["fail"] = False
    assert sync_runner.sync.retry_workflow(wf.id) == 2
    work()
    assert sync_runner.sync.workflow_result(wf.id, timeout=10) == 3
    assert sync_runner.sync.cancel_workflow(wf.id) == 0
