"""The Celery side's application: its settings and the same tasks as the taskrunner side.

Imported by the harness (to send the canvases) and by `celery -A
benchmarks.workflows.celery_app worker` (to run them). The broker and the result backend
are the private redis-server of the run ($BENCH_CELERY_BROKER, $BENCH_CELERY_BACKEND).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_ready

BROKER_ENV = "BENCH_CELERY_BROKER"
BACKEND_ENV = "BENCH_CELERY_BACKEND"
READY_FILE_ENV = "BENCH_CELERY_READY_FILE"

#: Celery's documented recommendations for many short tasks on Redis; printed with the
#: results. Everything not here is Celery's default. Chords join natively on the Redis
#: result backend: each header task's result goes into a sorted set and a counter per
#: chord (one Lua script), the last one sends the body; no chord_unlock polling task.
SETTINGS: dict[str, Any] = {
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    # The default: each pool slot may hold 4 messages ahead (the Optimizing guide
    # lowers it to 1 only for long tasks).
    "worker_prefetch_multiplier": 4,
    # The default: a message is acked when the worker receives it, so a worker that dies
    # loses what it held (acks_late=True would be the durable choice, at a cost).
    "task_acks_late": False,
    # The Optimizing guide: without rate limits in use, turning them off saves work.
    "worker_disable_rate_limits": True,
    "broker_connection_retry_on_startup": True,
    "worker_hijack_root_logger": False,
}

app = Celery(
    "bench_workflows",
    broker=os.environ.get(BROKER_ENV, "redis://127.0.0.1:6379/0"),
    backend=os.environ.get(BACKEND_ENV, "redis://127.0.0.1:6379/1"),
)
app.conf.update(SETTINGS)


@worker_ready.connect
def _announce_ready(**_: Any) -> None:
    ready_file = os.environ.get(READY_FILE_ENV)
    if ready_file:
        Path(ready_file).write_text(str(os.getpid()))


@app.task(name="wf.noop")
def noop(i: int) -> int:
    return i


@app.task(name="wf.body")
def body(results: list[int]) -> list[float]:
    """The chord's body: how many results it got, their sum, and when it ended."""
    return [len(results), sum(results), time.time()]


@app.task(name="wf.step")
def step(previous: int) -> int:
    return previous + 1


@app.task(name="wf.last")
def last(previous: int) -> list[float]:
    """A chain's last step: the count of steps before it plus itself, and when it ended."""
    return [previous + 1, time.time()]
