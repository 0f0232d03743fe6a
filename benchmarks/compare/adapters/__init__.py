"""One adapter per system; imported lazily so a missing peer only fails its own runs."""

from __future__ import annotations

import importlib

from benchmarks.compare.adapters.base import Adapter

MODULES = {
    "baseline": "benchmarks.compare.adapters.baseline",
    "taskrunner": "benchmarks.compare.adapters.taskrunner_adapter",
    "pgqueuer": "benchmarks.compare.adapters.pgqueuer_adapter",
    "procrastinate": "benchmarks.compare.adapters.procrastinate_adapter",
}


def load(system: str, concurrency: int) -> Adapter:
    module = importlib.import_module(MODULES[system])
    adapter: Adapter = module.ADAPTER(concurrency)
    return adapter


__all__ = ["MODULES", "Adapter", "load"]
