"""What a worker is told to do, apart from the runner whose tasks it runs.

Kept apart from the worker so that the runner, the CLI and the tests can speak of a
worker's settings without importing its machinery.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WorkerSettings"]


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    queues: tuple[str, ...] | None
    concurrency: int
    stop_when_idle: bool
    shutdown_timeout: float
    poll_interval: float = 1.0
    rescue_interval: float = 2.0
    prune_interval: float = 60.0
    process_pool_size: int | None = None
    handle_signals: bool = True
    # No claims while more outcomes than this wait to be written (None: twice the jobs
    # a worker may hold, concurrency plus claim_ahead, and at least one ack batch).
    max_unwritten: int | None = None
    metrics_port: int | None = None  # serve Prometheus metrics there (runner/metrics.py)
    # Jobs a claim may take beyond the free slots while short jobs have a backlog
    # (runner/prefetch.py; None: twice the concurrency, 0: never).
    claim_ahead: int | None = None
