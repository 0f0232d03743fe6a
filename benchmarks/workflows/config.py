"""Sizes of the workflow benchmark: the same for every system."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "benchmarks" / "results"

SYSTEMS = ("celery", "taskrunner")
WORKLOADS = ("chord", "chains", "drain")
CELERY_POOLS = ("threads", "prefork", "solo")


@dataclasses.dataclass(frozen=True)
class Sizes:
    concurrency: int = 16  # both workers: taskrunner's slots, Celery's pool size
    chord_size: int = 1_000
    chains: int = 200
    chain_length: int = 10
    drain_jobs: int = 20_000  # benchmarks.compare's drain, taskrunner only

    @classmethod
    def quick(cls) -> Sizes:
        return cls(chord_size=100, chains=20, drain_jobs=1_000)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
