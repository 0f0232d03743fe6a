"""The invariants, checked on a recorded history. Pure functions: no database, no clock.

Definitions (all times are CLOCK_MONOTONIC seconds, one clock for the whole machine):

- An execution runs from its `S` line to its `D`/`X`/`C` line; one without an end line
  ran until its process died (the suite's kill or the exit it observed), else until the
  end of the run. Time its process spent stopped (SIGSTOP to SIGCONT) is not running.
- **lost**: a job that ended `failed` or `cancelled`, or whose row is gone. Every handler
  succeeds and has 100 attempts, so only the system can lose a job.
- **stuck**: a job not in a final status after the drain time.
- **double run**: two executions of one job (from any processes, or two of one
  process) whose running times overlap. A process that was resumed after a SIGSTOP gets
  `resume_grace` seconds to fence itself (it cannot act before it is scheduled again);
  an overlap that begins within that grace of a resume and ends within it is not counted.
- **stale ack**: the job's stored result names the execution whose acknowledgement was
  accepted (`[pid, exec_seq, attempt]`). It is stale when that execution is not the
  job's last claim: its attempt is below the row's `attempts`, or another execution of
  the job with the same or a higher attempt started after it (a later claim superseded
  it), or it is not in the history at all, or it never reached its `D` line.
- **duplicate keyed effect**: a keyed job's effect counts once per execution that did it
  (reached `D`) and was accepted as the job's outcome: its job ended `succeeded` with
  `attempts` equal to that execution's attempt. Runs redone after a crash (at least
  once) are not counted; two jobs for one key, or two executions under one claim number
  (a claim forgotten by the server), are. A key with more than one counted effect is a
  duplicate; so is a key whose enqueues returned more than one job id.
- **crash**: a worker process that exited without being killed by the suite, or that did
  not exit 0 within its shutdown bound when the suite stopped it.
- **recovery** after a fault: seconds from the fault's end (the kill, the SIGCONT, the
  end of the partition, the server accepting connections again, the terminations) until
  throughput is back. For a fault that hit one worker slot, until that slot (the
  replacement of a killed worker, the resumed or reconnected one) completes a job whose
  acknowledgement is accepted; for a fault that hit every worker, until the accepted
  completions within one second reach half the no-fault run's rate. None when no work was
  left to show it. (Jobs the fault took from a worker run again after their lease runs
  out, in their place in the queue: that wait is at-least-once delivery, not recovery.)
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.chaos.history import DONE, Execution

FINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class JobRow:
    job_id: int
    status: str
    attempts: int
    result: Any = None
    idempotency_key: str | None = None
    finished_at: float | None = None  # monotonic (converted from the server's wall clock)


@dataclass
class Process:
    pid: int
    started: float
    ended: float | None = None  # when the suite saw it exit (or killed it)
    killed: bool = False  # the suite sent it SIGKILL (an injected fault)
    stopped_by_suite: bool = False  # the suite ended it at the end of the run
    exit_code: int | None = None
    shutdown_in_time: bool = True
    slot: int | None = None  # the worker slot (proxy listener) it ran in


@dataclass
class Freeze:
    pid: int
    stopped: float
    resumed: float | None


@dataclass
class Fault:
    kind: str  # kill, stop, partition, restart-fast, restart-immediate, terminate, block
    start: float
    end: float
    pids: list[int] = field(default_factory=list)
    detail: str = ""
    slot: int | None = None  # the one worker slot it hit; None: every worker


@dataclass
class Report:
    jobs: int = 0
    lost: list[int] = field(default_factory=list)
    stuck: list[int] = field(default_factory=list)
    double_runs: list[dict[str, Any]] = field(default_factory=list)
    stale_acks: list[dict[str, Any]] = field(default_factory=list)
    dup_effects: list[dict[str, Any]] = field(default_factory=list)
    crashes: list[dict[str, Any]] = field(default_factory=list)
    recoveries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def max_recovery(self) -> float:
        return max((r["recovery"] for r in self.recoveries if r["recovery"] is not None),
                   default=0.0)

    @property
    def passed(self) -> bool:
        return not (self.lost or self.stuck or self.double_runs or self.stale_acks
                    or self.dup_effects or self.crashes)


# ---- running time of an execution ---------------------------------------------------


def running_pieces(
    ex: Execution, death: float | None, run_end: float, freezes: Sequence[Freeze]
) -> list[tuple[float, float]]:
    """The intervals in which `ex` was running: start to end minus its process's stops."""
    end = ex.end if ex.end is not None else (death if death is not None else run_end)
    pieces = [(ex.start, max(ex.start, end))]
    for fr in freezes:
        resumed = fr.resumed if fr.resumed is not None else run_end
        cut: list[tuple[float, float]] = []
        for a, b in pieces:
            if resumed <= a or fr.stopped >= b:
                cut.append((a, b))
                continue
            if a < fr.stopped:
                cut.append((a, fr.stopped))
            if resumed < b:
                cut.append((resumed, b))
        pieces = cut
    return pieces


def _overlaps(
    p: list[tuple[float, float]], q: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    out = []
    for a, b in p:
        for c, d in q:
            lo, hi = max(a, c), min(b, d)
            if hi > lo:
                out.append((lo, hi))
    return out


def find_double_runs(
    executions: Iterable[Execution],
    processes: dict[int, Process],
    freezes: Sequence[Freeze],
    run_end: float,
    resume_grace: float = 0.25,
) -> list[dict[str, Any]]:
    by_job: dict[int, list[Execution]] = defaultdict(list)
    for ex in executions:
        by_job[ex.job_id].append(ex)
    freezes_of: dict[int, list[Freeze]] = defaultdict(list)
    for fr in freezes:
        freezes_of[fr.pid].append(fr)
    found = []
    for job_id, exs in by_job.items():
        if len(exs) < 2:
            continue
        pieces = []
        for ex in exs:
            proc = processes.get(ex.pid)
            pieces.append(running_pieces(ex, proc.ended if proc else None, run_end,
                                         freezes_of.get(ex.pid, [])))
        for i in range(len(exs)):
            for j in range(i + 1, len(exs)):
                resumes = [fr.resumed for fr in freezes_of.get(exs[i].pid, [])
                           + freezes_of.get(exs[j].pid, []) if fr.resumed is not None]
                real = [
                    (lo, hi) for lo, hi in _overlaps(pieces[i], pieces[j])
                    if not any(r <= lo <= r + resume_grace and hi <= r + resume_grace
                               for r in resumes)
                ]
                if real:
                    found.append({
                        "job_id": job_id,
                        "a": {"pid": exs[i].pid, "attempt": exs[i].attempt,
                              "start": exs[i].start, "end": exs[i].end},
                        "b": {"pid": exs[j].pid, "attempt": exs[j].attempt,
                              "start": exs[j].start, "end": exs[j].end},
                        "overlap": round(sum(hi - lo for lo, hi in real), 3),
                    })
    return found


# ---- acknowledgements and effects ---------------------------------------------------


def _winner_key(result: Any) -> tuple[int, int, int] | None:
    if isinstance(result, list) and len(result) == 3 and all(isinstance(x, int) for x in result):
        return (result[0], result[1], result[2])
    return None


def find_stale_acks(
    executions: Iterable[Execution], rows: dict[int, JobRow]
) -> list[dict[str, Any]]:
    by_job: dict[int, list[Execution]] = defaultdict(list)
    by_key: dict[tuple[int, int], Execution] = {}
    for ex in executions:
        by_job[ex.job_id].append(ex)
        by_key[ex.key] = ex
    found = []
    for row in rows.values():
        if row.status != "succeeded":
            continue
        wk = _winner_key(row.result)
        winner = by_key.get((wk[0], wk[1])) if wk else None
        reason = None
        if winner is None or winner.job_id != row.job_id:
            reason = "result names no recorded execution of this job"
        elif winner.outcome != DONE:
            reason = "the accepted execution never finished its handler"
        elif winner.attempt < row.attempts:
            reason = (f"accepted attempt {winner.attempt} but the job was claimed "
                      f"{row.attempts} times")
        else:
            later = [ex for ex in by_job[row.job_id] if ex is not winner
                     and ex.start > winner.start and ex.attempt >= winner.attempt]
            if later:
                reason = (f"accepted attempt {winner.attempt} (pid {winner.pid}) though pid "
                          f"{later[0].pid} started attempt {later[0].attempt} after it")
        if reason:
            found.append({"job_id": row.job_id, "result": row.result, "reason": reason})
    return found


def find_dup_effects(
    executions: Iterable[Execution],
    rows: dict[int, JobRow],
    key_jobs: dict[str, set[int]],
) -> list[dict[str, Any]]:
    effects: dict[int, list[Execution]] = defaultdict(list)  # job id -> counted effects
    for ex in executions:
        row = rows.get(ex.job_id)
        if (row is not None and row.status == "succeeded" and ex.outcome == DONE
                and ex.attempt == row.attempts):
            effects[ex.job_id].append(ex)
    found = []
    for key, job_ids in key_jobs.items():
        counted = [ex for j in sorted(job_ids) for ex in effects.get(j, [])]
        if len(counted) > 1 or len(job_ids) > 1:
            reason = (f"{len(job_ids)} jobs for one key" if len(job_ids) > 1 else
                      f"attempt {counted[0].attempt} did its effect in {len(counted)} "
                      "executions: a claim was taken twice under one attempt number")
            found.append({"key": key, "job_ids": sorted(job_ids), "effects": len(counted),
                          "reason": reason,
                          "executions": [{"pid": ex.pid, "attempt": ex.attempt,
                                          "start": ex.start, "end": ex.end} for ex in counted]})
    return found


# ---- jobs, processes, recovery ------------------------------------------------------


def find_lost_and_stuck(
    expected: Iterable[int], rows: dict[int, JobRow]
) -> tuple[list[int], list[int]]:
    lost, stuck = [], []
    for job_id in expected:
        row = rows.get(job_id)
        if row is None or row.status in ("failed", "cancelled"):
            lost.append(job_id)
        elif row.status not in FINAL:
            stuck.append(job_id)
    return lost, stuck


def find_crashes(processes: Iterable[Process]) -> list[dict[str, Any]]:
    found = []
    for proc in processes:
        if proc.killed:
            continue
        if proc.stopped_by_suite:
            if proc.exit_code != 0 or not proc.shutdown_in_time:
                found.append({"pid": proc.pid, "exit_code": proc.exit_code,
                              "reason": "did not shut down cleanly in time"
                              if not proc.shutdown_in_time else "non-zero exit at shutdown"})
        elif proc.ended is not None:
            found.append({"pid": proc.pid, "exit_code": proc.exit_code,
                          "reason": "exited on its own during the run"})
    return found


def accepted_completions(
    executions: Iterable[Execution], rows: dict[int, JobRow]
) -> list[Execution]:
    """The executions whose acknowledgement the database kept (named by the result)."""
    winners = {}
    for row in rows.values():
        wk = _winner_key(row.result) if row.status == "succeeded" else None
        if wk:
            winners[(wk[0], wk[1])] = row.job_id
    return [ex for ex in executions if ex.outcome == DONE and winners.get(ex.key) == ex.job_id]


def recovery_times(
    faults: Sequence[Fault],
    executions: Sequence[Execution],
    rows: dict[int, JobRow],
    processes: dict[int, Process],
    reference_rate: float,
    window: float = 1.0,
) -> list[dict[str, Any]]:
    accepted = accepted_completions(executions, rows)
    everywhere = sorted(ex.end for ex in accepted if ex.end is not None)
    by_slot: dict[int, list[float]] = defaultdict(list)
    for ex in accepted:
        proc = processes.get(ex.pid)
        if proc is not None and proc.slot is not None and ex.end is not None:
            by_slot[proc.slot].append(ex.end)
    for times in by_slot.values():
        times.sort()
    need = max(1, int(reference_rate * window * 0.5))

    def rate_back(t: float) -> float | None:
        # the end of the first window after t holding `need` accepted completions
        i = bisect.bisect_left(everywhere, t)
        while i + need - 1 < len(everywhere):
            if everywhere[i + need - 1] - everywhere[i] <= window:
                return max(0.0, everywhere[i + need - 1] - t)
            i += 1
        return None

    out = []
    for fault in faults:
        if fault.kind == "block":
            continue
        if fault.slot is not None:
            times = by_slot.get(fault.slot, [])
            i = bisect.bisect_right(times, fault.end)
            recovery = times[i] - fault.end if i < len(times) else None
        else:
            recovery = rate_back(fault.end)
        out.append({"kind": fault.kind, "at": round(fault.start, 3),
                    "duration": round(fault.end - fault.start, 3), "slot": fault.slot,
                    "recovery": None if recovery is None else round(recovery, 3),
                    "detail": fault.detail})
    return out


def check(
    *,
    expected_jobs: Sequence[int],
    rows: dict[int, JobRow],
    executions: Sequence[Execution],
    processes: dict[int, Process],
    freezes: Sequence[Freeze],
    faults: Sequence[Fault],
    key_jobs: dict[str, set[int]],
    run_end: float,
    reference_rate: float,
    resume_grace: float = 0.25,
) -> Report:
    report = Report(jobs=len(expected_jobs))
    report.lost, report.stuck = find_lost_and_stuck(expected_jobs, rows)
    report.double_runs = find_double_runs(executions, processes, freezes, run_end, resume_grace)
    report.stale_acks = find_stale_acks(executions, rows)
    report.dup_effects = find_dup_effects(executions, rows, key_jobs)
    report.crashes = find_crashes(processes.values())
    report.recoveries = recovery_times(faults, executions, rows, processes, reference_rate)
    return report
