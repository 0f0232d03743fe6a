"""What the workflow properties assert, given the model's expectation, the jobs as they
ended, and the history the steps wrote (see workflow_app.py)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from workflow_plans import Expected

from taskrunner import Job


@dataclass
class Attempts:
    """One step's history: its attempts' start lines and end lines (ok or fail)."""

    starts: list[dict[str, Any]] = field(default_factory=list)
    ends: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)  # (pid, attempt)

    @property
    def oks(self) -> list[dict[str, Any]]:
        return sorted((e for e in self.ends.values() if e["event"] == "ok"), key=lambda e: e["t"])


def by_step(history: list[dict[str, Any]]) -> dict[int, Attempts]:
    steps: dict[int, Attempts] = defaultdict(Attempts)
    for line in history:
        if line["event"] == "start":
            steps[line["label"]].starts.append(line)
        else:
            steps[line["label"]].ends[(line["pid"], line["attempt"])] = line
    return steps


def check_runs(
    model: Expected,
    jobs: dict[int, Job],
    history: list[dict[str, Any]],
    killed: dict[int, float] | None = None,
) -> None:
    """Whatever happened around it (kills, a cancel), every run of a step: only after
    all its parents succeeded, with exactly their results, never two at once, and at
    most one success (a second only where the worker of the first was killed before it
    could record it)."""
    killed = killed or {}
    steps = by_step(history)
    for label, attempts in steps.items():
        job = jobs[label]
        outcome = model.steps[label]
        assert {s["job"] for s in attempts.starts} == {job.id}, f"step {label}: job ids"
        for start in attempts.starts:
            assert start["received"] == outcome.received, (
                f"step {label} received {start['received']!r}, the model says {outcome.received!r}"
            )
        first_start = min(s["t"] for s in attempts.starts)
        for parent in outcome.parents:
            parent_oks = steps[parent].oks if parent in steps else []
            assert parent_oks, f"step {label} ran, but its parent {parent} never succeeded"
            assert first_start >= parent_oks[-1]["t"], (
                f"step {label} started before its parent {parent} succeeded"
            )
        previous_end = None
        for start in sorted(attempts.starts, key=lambda s: s["t"]):
            if previous_end is not None:
                assert start["t"] >= previous_end, f"step {label} ran twice at the same time"
            end = attempts.ends.get((start["pid"], start["attempt"]))
            if end is not None:
                previous_end = end["t"]
            else:
                assert start["pid"] in killed or job.status == "cancelled", (
                    f"step {label}: an attempt of pid {start['pid']} never ended"
                )
                previous_end = killed.get(start["pid"], previous_end)
        oks = attempts.oks
        assert len(oks) <= 1 or all(ok["pid"] in killed for ok in oks[:-1]), (
            f"step {label} succeeded {len(oks)} times"
        )


def check_outcome(model: Expected, jobs: dict[int, Job], history: list[dict[str, Any]]) -> None:
    """Without a cancel of the whole workflow, the outcome is the model's exactly."""
    steps = by_step(history)
    for label, outcome in model.steps.items():
        job = jobs[label]
        assert job.status == outcome.status, (
            f"step {label} ended {job.status}, the model says {outcome.status}"
        )
        oks = steps[label].oks if label in steps else []
        if outcome.status == "succeeded":
            assert job.result == label
            assert oks, f"step {label} succeeded without running"
        else:
            assert not oks, f"step {label} ended {job.status} after a success"
        if outcome.status == "cancelled" and label not in model.cancelled:
            assert label not in steps, f"step {label} ran though a step before it broke"
            named = [jobs[c].id for c in outcome.culprits]
            assert any(f"step {i} " in (job.last_error or "") for i in named), (
                f"step {label}: last_error {job.last_error!r} names none of {named}"
            )
        if label in steps:
            assert job.attempts >= len(steps[label].starts)
