"""`python -m benchmarks.chaos.timeline DIR`: where the fault run's extra time went.

DIR is the directory a run kept (`--keep-files`, or any FAIL). From the histories and the
run records of both runs it counts slot-seconds (one worker slot for one second):

- accepted: executions whose acknowledgement the database kept (the work itself);
- wasted: executions that ran and were not kept, by why: killed with their process,
  stopped by their worker (fenced, cancelled) after the fault before them, done but not
  accepted (an ack lost in a crash);
- start-up: slots of a replacement worker from its spawn to its first handler start;
- idle: the rest of the capacity (slots x duration).

The fault run's extra duration is (its slot-seconds - the no-fault run's) / slots, so
the differences per line say how many seconds of the run each cause cost. With
`--seconds` it also prints, per second of both runs, the busy slots and the accepted
completions, with the faults that began in that second.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.chaos.checker import Freeze, JobRow, accepted_completions, running_pieces
from benchmarks.chaos.history import Execution, read_history


@dataclass
class RunBook:
    start: float
    duration: float
    slots: int
    counts: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    busy: list[float] = field(default_factory=list)  # per second
    done: list[int] = field(default_factory=list)  # accepted completions per second
    faults: list[dict[str, Any]] = field(default_factory=list)


def _cause(ex: Execution, killed: bool, faults: list[dict[str, Any]], end: float) -> str:
    if ex.outcome is None and killed:
        return "wasted: killed with its worker"
    if ex.outcome == "D":
        return "wasted: done, ack not kept"
    before = [f for f in faults if f["start"] <= end and f["kind"] != "kill"]
    return "wasted: stopped after " + (before[-1]["kind"] if before else "no fault")


def book(run_dir: Path, concurrency: int) -> RunBook:
    run = json.loads((run_dir / "run.json").read_text())
    rows = {r["job_id"]: JobRow(**r) for r in run["rows"]}
    executions = read_history(run_dir / "history")
    procs = {p["pid"]: p for p in run["processes"]}
    freezes = [Freeze(**f) for f in run["freezes"]]
    faults = sorted(run["faults"], key=lambda f: f["start"])
    start = min(p["started"] for p in procs.values())
    end = max(r.finished_at for r in rows.values() if r.finished_at is not None)
    slots = concurrency * len({p["slot"] for p in procs.values()})
    rb = RunBook(start, end - start, slots, faults=faults)
    seconds = int(rb.duration) + 1
    rb.busy, rb.done = [0.0] * seconds, [0] * seconds
    kept = {ex.key for ex in accepted_completions(executions, rows)}
    first_start: dict[int, float] = {}
    for ex in executions:
        first_start[ex.pid] = min(first_start.get(ex.pid, ex.start), ex.start)
        proc = procs.get(ex.pid, {})
        killed = bool(proc.get("killed"))
        pieces = running_pieces(
            ex,
            proc.get("ended") if killed else None,
            run["run_end"],
            [f for f in freezes if f.pid == ex.pid],
        )
        ran = sum(min(b, end) - a for a, b in pieces if a < end)
        last = pieces[-1][1] if pieces else ex.start
        rb.counts["accepted" if ex.key in kept else _cause(ex, killed, faults, last)] += ran
        for a, b in pieces:
            for i in range(max(0, int(a - start)), min(seconds, int(b - start) + 1)):
                rb.busy[i] += max(0.0, min(b - start, i + 1) - max(a - start, i))
        if ex.key in kept and ex.end is not None and ex.end < end:
            rb.done[int(ex.end - start)] += 1
    for pid, proc in procs.items():
        if proc["started"] > start + 0.5:  # a replacement (the first ones start together)
            until = min(first_start.get(pid, end), proc.get("ended") or end, end)
            rb.counts["start-up of replacements"] += max(0.0, until - proc["started"]) * concurrency
    rb.counts["idle"] = rb.slots * rb.duration - sum(rb.counts.values())
    return rb


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.chaos.timeline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("dir", help="the directory a chaos run kept")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="slots per worker (default: 8 if there were 4 workers, else 16)",
    )
    parser.add_argument("--seconds", action="store_true", help="print the per-second table")
    args = parser.parse_args()
    base = Path(args.dir)
    slots_of = {
        p["slot"] for p in json.loads((base / "nofault" / "run.json").read_text())["processes"]
    }
    concurrency = args.concurrency or (8 if len(slots_of) == 4 else 16)
    ref, run = book(base / "nofault", concurrency), book(base / "faults", concurrency)
    print(
        f"no-fault run {ref.duration:.1f}s, fault run {run.duration:.1f}s "
        f"(+{run.duration - ref.duration:.1f}s), {run.slots} slots"
    )
    print(f"{'slot-seconds':40s} {'no-fault':>9s} {'faults':>9s} {'= run s':>8s}")
    for cause in sorted(set(ref.counts) | set(run.counts), key=lambda c: -run.counts[c]):
        diff = (run.counts[cause] - ref.counts[cause]) / run.slots
        print(f"{cause:40s} {ref.counts[cause]:9.0f} {run.counts[cause]:9.0f} {diff:+8.1f}")
    if args.seconds:
        marks: dict[int, list[str]] = defaultdict(list)
        for f in run.faults:
            marks[int(f["start"] - run.start)].append(f["kind"])
        print("second  busy(no-fault)  busy(faults)  done(no-fault)  done(faults)  faults")
        for i in range(max(len(ref.busy), len(run.busy))):
            cells = [
                (ref.busy[i] if i < len(ref.busy) else 0.0),
                (run.busy[i] if i < len(run.busy) else 0.0),
            ]
            done = [
                (ref.done[i] if i < len(ref.done) else 0),
                (run.done[i] if i < len(run.done) else 0),
            ]
            print(
                f"{i:6d} {cells[0]:15.1f} {cells[1]:13.1f} {done[0]:15d} {done[1]:13d}  "
                + " ".join(marks.get(i, []))
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
