"""The history of every execution, written by the handlers and read by the checker.

Each worker process appends to a file of its own (`<pid>.log` in the history
directory), one line per event, each written with a single unbuffered `os.write` on an
`O_APPEND` descriptor. A line that `write` returned for is in the kernel and survives the
process being killed (SIGKILL, a crash), which is all the suite injects; it would not
survive the machine losing power, which the suite does not simulate, so no `fsync` is
paid per line.

Line format (space-separated): `kind job_id attempt pid exec_seq monotonic wall`

- `S` the handler started; `D` it is about to return normally (its effect is done);
  `X` it ended by an exception (`C` for a cancellation), so it did no effect.
- `pid` and `exec_seq` (a per-process counter) name one execution; the handler returns
  `[pid, exec_seq, attempt]` as the job's result, so the checker knows which execution's
  acknowledgement the database kept.
- `monotonic` is `time.monotonic()`: CLOCK_MONOTONIC, one clock for every process of the
  machine, so times of different workers compare without skew. `wall` is `time.time()`,
  for people.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

START, DONE, ERROR, CANCEL = "S", "D", "X", "C"


class Recorder:
    """The per-process writer used by the chaos app's handlers."""

    def __init__(self, directory: str | Path) -> None:
        self.pid = os.getpid()
        path = Path(directory) / f"{self.pid}.log"
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.seq = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def write(self, kind: str, job_id: int, attempt: int, seq: int) -> None:
        mono, wall = time.monotonic(), time.time()
        line = f"{kind} {job_id} {attempt} {self.pid} {seq} {mono:.6f} {wall:.6f}\n"
        os.write(self.fd, line.encode())


@dataclass
class Execution:
    """One run of a handler, as the history shows it."""

    job_id: int
    attempt: int
    pid: int
    seq: int
    start: float
    end: float | None = None  # monotonic time of the D/X/C line, None if there is none
    outcome: str | None = None  # "D", "X", "C" or None (the process died mid-run)
    wall_start: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> tuple[int, int]:
        return (self.pid, self.seq)


def parse_lines(lines: Iterable[str]) -> Iterator[tuple[str, int, int, int, int, float, float]]:
    for line in lines:
        parts = line.split()
        if len(parts) != 7:
            continue  # a line cut short cannot happen with one write, but never trust it
        kind, job, attempt, pid, seq, mono, wall = parts
        yield kind, int(job), int(attempt), int(pid), int(seq), float(mono), float(wall)


def executions_from_lines(lines: Iterable[str]) -> list[Execution]:
    by_key: dict[tuple[int, int], Execution] = {}
    for kind, job, attempt, pid, seq, mono, wall in parse_lines(lines):
        if kind == START:
            by_key[(pid, seq)] = Execution(job, attempt, pid, seq, mono, wall_start=wall)
        else:
            ex = by_key.get((pid, seq))
            if ex is not None:
                ex.end, ex.outcome = mono, kind
    return list(by_key.values())


def read_history(directory: str | Path) -> list[Execution]:
    executions: list[Execution] = []
    for path in sorted(Path(directory).glob("*.log")):
        with path.open() as f:
            executions.extend(executions_from_lines(f))
    return executions
