"""What a worker's LISTEN missed: a notification sent before LISTEN was in place (the
worker just started, or it LISTENs again after losing its connection) is lost, so the
worker catches up once LISTEN is in place instead of waiting for its next renewal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from worker_helpers import background_worker, endless_task

from taskrunner import JobStatus, TaskRunner
from taskrunner.runner import listening
from taskrunner.runner.tasks import DEFAULT_LEASE

# Renewals come every third of the lease: a cancel that only a renewal brings takes
# up to this long, one that the catch-up brings a round trip.
RENEWAL_INTERVAL = DEFAULT_LEASE / 3


async def test_a_cancel_sent_before_the_worker_listens_stops_its_handler_once_it_listens(
    tr: TaskRunner, monkeypatch: pytest.MonkeyPatch
):
    release = asyncio.Event()
    connect = listening.connect

    async def held_back(*args: Any, **kwargs: Any) -> Any:
        await release.wait()
        return await connect(*args, **kwargs)

    monkeypatch.setattr(listening, "connect", held_back)  # LISTEN comes when released
    endless = endless_task(tr)
    job = await endless.task.enqueue()
    async with background_worker(tr) as background:
        if background.worker.notifications is None:
            pytest.skip("behind a pooler without a direct connection the worker never LISTENs")
        await asyncio.wait_for(endless.started.wait(), 10)
        assert await tr.cancel(job.id) is True  # its notification finds nobody LISTENing
        release.set()
        await asyncio.wait_for(background.worker.notifications.listening.wait(), 10)
        ended = await tr.wait(job.id, timeout=RENEWAL_INTERVAL / 2)

    assert endless.cancelled.is_set()
    assert ended.status is JobStatus.CANCELLED
