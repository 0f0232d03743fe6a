"""A worker's progress line: while attempts end, one INFO line every interval with how
many succeeded, will be retried and failed for good, and how many run now."""

from __future__ import annotations

import logging

import pytest
import tenacity
from worker_helpers import background_worker, eventually

from taskrunner import PermanentFailure, Retry, TaskRunner, TaskRunnerError
from taskrunner.runner import progress
from taskrunner.runner.progress import Progress


def progress_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if hasattr(r, "succeeded") and r.name == "taskrunner"]


def totals(records: list[logging.LogRecord]) -> tuple[int, int, int]:
    return (
        sum(r.succeeded for r in records),  # type: ignore[attr-defined]
        sum(r.retrying for r in records),  # type: ignore[attr-defined]
        sum(r.failed for r in records),  # type: ignore[attr-defined]
    )


async def test_a_busy_worker_logs_how_many_attempts_ended_at_info(
    runner: TaskRunner, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(progress, "PROGRESS_INTERVAL", 0.1)
    caplog.set_level(logging.INFO, logger="taskrunner")
    calls: list[int] = []

    @runner.task
    async def fine(n: int) -> int:
        return n

    @runner.task(retry=Retry(max_attempts=2, wait=tenacity.wait_fixed(0)))
    async def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first attempt fails")

    @runner.task
    async def doomed() -> None:
        raise PermanentFailure("never works")

    await runner.enqueue_many(fine, [(n,) for n in range(4)])
    await flaky.enqueue()
    await doomed.enqueue()

    async with background_worker(runner):
        await eventually(
            lambda: totals(progress_lines(caplog)) == (5, 1, 1),
            message="progress lines adding up to 5 succeeded, 1 retrying, 1 failed",
        )

    lines = progress_lines(caplog)
    assert all(r.levelno == logging.INFO for r in lines)
    assert all("\n" not in r.getMessage() for r in lines)
    assert all("attempts succeeded" in r.getMessage() for r in lines)


def test_progress_counts_start_again_from_zero_once_taken():
    counts = Progress(succeeded=3, retrying=1, failed=2)
    assert counts.take() == (3, 1, 2)
    assert counts.take() == (0, 0, 0)


async def test_a_worker_of_a_runner_without_tasks_is_refused_with_a_taskrunner_error(
    runner: TaskRunner,
):
    with pytest.raises(TaskRunnerError, match="no registered tasks"):
        await runner.run_worker(stop_when_idle=True, handle_signals=False)
