"""Sizes and fixed settings of the comparison: the same numbers for every system."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

#: Workloads in the order they run and are reported.
WORKLOADS = (
    "enqueue_single",
    "enqueue_batch",
    "drain",
    "latency",
    "steady",
    "backlog",
    "cpu",
)

#: Systems in the order they are interleaved (A B C D A B C D ...).
SYSTEMS = ("baseline", "taskrunner", "pgqueuer", "procrastinate")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every size of every workload. `quick()` divides the counts by ~20."""

    concurrency: int = 16  # worker concurrency and enqueue_single coroutines
    enqueue_single_jobs: int = 10_000
    enqueue_batch_jobs: int = 50_000
    enqueue_batch_chunk: int = 1_000
    drain_jobs: int = 20_000
    latency_jobs: int = 1_000
    latency_interval_s: float = 0.010
    steady_rate: float = 1_000.0  # offered jobs/s
    steady_seconds: float = 20.0
    backlog_big: int = 1_000_000  # jobs queued for the big-backlog run
    backlog_small: int = 10_000  # jobs queued for the small-backlog run
    backlog_measured: int = 10_000  # jobs the worker runs in each of the two runs
    cpu_jobs: int = 64
    cpu_job_ms: float = 50.0
    pgbench_seconds: int = 10
    pgbench_clients: int = 16
    pgbench_threads: int = 2
    pgbench_rows: int = 1_000_000  # must outlast -T at the ceiling rate (checked)
    fill_chunk: int = 10_000  # chunk size for untimed pre-fills
    warmup_jobs: int = 16  # untimed jobs sent first in enqueue/latency runs

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            enqueue_single_jobs=500,
            enqueue_batch_jobs=2_500,
            drain_jobs=1_000,
            latency_jobs=50,
            steady_seconds=1.0,
            backlog_big=50_000,
            backlog_small=500,
            backlog_measured=500,
            cpu_jobs=8,
            pgbench_seconds=2,
            pgbench_rows=250_000,
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_dsn() -> str:
    return os.environ.get("BENCH_DSN") or DEFAULT_DSN
