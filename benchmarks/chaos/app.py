"""The chaos suite's task app: `taskrunner worker benchmarks.chaos.app:runner`.

Configured by the environment the suite gives each worker process:
`CHAOS_DSN` (the worker's way to the server, usually through the proxy),
`CHAOS_SCHEMA`, `CHAOS_HISTORY` (the history directory), `CHAOS_LEASE` (seconds).

Every handler writes its execution to the history (see history.py) and returns
`[pid, exec_seq, attempt]`, so the job's stored result names the execution whose
acknowledgement was accepted.
"""

from __future__ import annotations

import asyncio
import os
import time

import taskrunner
from benchmarks.chaos.history import CANCEL, DONE, ERROR, START, Recorder

LEASE = float(os.environ.get("CHAOS_LEASE", "3"))
MAX_ATTEMPTS = 100  # faults must never use a job's attempts up

_recorder: Recorder | None = None


def recorder() -> Recorder:
    global _recorder
    if _recorder is None or _recorder.pid != os.getpid():
        _recorder = Recorder(os.environ.get("CHAOS_HISTORY", "."))
    return _recorder


async def work(n: int, ms: int) -> list[int]:
    """Job number `n`: runs for `ms` milliseconds on the event loop, then does its
    effect (the D line of the history)."""
    job = taskrunner.current_job()
    assert job is not None
    rec = recorder()
    seq = rec.next_seq()
    rec.write(START, job.job_id, job.attempt, seq)
    try:
        if ms:
            await asyncio.sleep(ms / 1000)
    except asyncio.CancelledError:
        rec.write(CANCEL, job.job_id, job.attempt, seq)
        raise
    except BaseException:
        rec.write(ERROR, job.job_id, job.attempt, seq)
        raise
    rec.write(DONE, job.job_id, job.attempt, seq)
    return [rec.pid, seq, job.attempt]


async def block(ms: int) -> list[int]:
    """Blocks the worker's event loop for `ms` milliseconds (a handler calling blocking
    code by mistake): no renewal, ack or claim of that worker runs meanwhile."""
    job = taskrunner.current_job()
    assert job is not None
    rec = recorder()
    seq = rec.next_seq()
    rec.write(START, job.job_id, job.attempt, seq)
    time.sleep(ms / 1000)  # on purpose: this is the fault
    rec.write(DONE, job.job_id, job.attempt, seq)
    return [rec.pid, seq, job.attempt]


def make_runner(dsn: str | None, schema: str, lease: float = LEASE) -> taskrunner.TaskRunner:
    """A runner with the chaos tasks registered (the suite enqueues through one too)."""
    app = taskrunner.TaskRunner(dsn=dsn, schema=schema)
    app.task(name="chaos.work", lease=lease, max_attempts=MAX_ATTEMPTS)(work)
    app.task(name="chaos.block", lease=lease, max_attempts=MAX_ATTEMPTS)(block)
    return app


runner = make_runner(os.environ.get("CHAOS_DSN"), os.environ.get("CHAOS_SCHEMA", "chaos"))
