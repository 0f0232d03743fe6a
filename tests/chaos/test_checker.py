"""The chaos suite's checker, on made-up histories: a broken checker must not pass.

Pure logic, no database: each test builds the history a fault could leave behind and
says what the checker must make of it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.chaos.checker import (  # noqa: E402
    Fault,
    Freeze,
    JobRow,
    Process,
    check,
    recovery_times,
)
from benchmarks.chaos.history import Execution, Recorder, read_history  # noqa: E402

A, B = 100, 200  # two worker pids


def ex(job: int, attempt: int, pid: int, seq: int, start: float, end: float | None,
       outcome: str | None = "D") -> Execution:
    return Execution(job, attempt, pid, seq, start, end, outcome if end is not None else None)


def ok(job: int, attempts: int, pid: int, seq: int, key: str | None = None) -> JobRow:
    return JobRow(job, "succeeded", attempts, [pid, seq, attempts], key, finished_at=None)


def procs(*extra: Process) -> dict[int, Process]:
    found = {A: Process(A, 0.0, stopped_by_suite=True, exit_code=0, ended=100.0),
             B: Process(B, 0.0, stopped_by_suite=True, exit_code=0, ended=100.0)}
    found.update({p.pid: p for p in extra})
    return found


def run(executions: list[Execution], rows: dict[int, JobRow], *,
        processes: dict[int, Process] | None = None, freezes: list[Freeze] | None = None,
        key_jobs: dict[str, set[int]] | None = None, expected: list[int] | None = None):
    return check(
        expected_jobs=expected if expected is not None else sorted(rows),
        rows=rows, executions=executions, processes=processes or procs(),
        freezes=freezes or [], faults=[], key_jobs=key_jobs or {}, run_end=100.0,
        reference_rate=10.0,
    )


def test_a_clean_history_passes() -> None:
    report = run([ex(1, 1, A, 1, 1.0, 2.0), ex(2, 1, B, 1, 1.5, 2.5)],
                 {1: ok(1, 1, A, 1, "k1"), 2: ok(2, 1, B, 1)}, key_jobs={"k1": {1}})
    assert report.passed, report


def test_a_job_that_never_succeeded_is_lost() -> None:
    rows = {1: ok(1, 1, A, 1), 2: JobRow(2, "failed", 5)}
    report = run([ex(1, 1, A, 1, 1.0, 2.0)], rows, expected=[1, 2, 3])
    assert report.lost == [2, 3]  # failed, and a row that is gone
    assert not report.passed


def test_a_job_not_final_after_the_drain_is_stuck() -> None:
    report = run([ex(1, 1, A, 1, 1.0, None)], {1: JobRow(1, "running", 1)})
    assert report.stuck == [1]
    assert not report.passed


def test_overlapping_runs_of_one_job_on_two_workers_are_a_double_run() -> None:
    executions = [ex(1, 1, A, 1, 1.0, 5.0, "C"), ex(1, 2, B, 1, 4.0, 6.0)]
    report = run(executions, {1: ok(1, 2, B, 1)})
    assert len(report.double_runs) == 1
    assert report.double_runs[0]["overlap"] == 1.0


def test_a_run_without_an_end_line_runs_until_its_process_died() -> None:
    killed = Process(A, 0.0, ended=5.0, killed=True, exit_code=-9)
    executions = [ex(1, 1, A, 1, 1.0, None), ex(1, 2, B, 1, 4.0, 6.0)]
    report = run(executions, {1: ok(1, 2, B, 1)}, processes=procs(killed))
    assert len(report.double_runs) == 1
    later = run([ex(1, 1, A, 1, 1.0, None), ex(1, 2, B, 1, 5.5, 6.0)], {1: ok(1, 2, B, 1)},
                processes=procs(killed))
    assert later.passed, later  # the re-run began after the kill: at least once, fine


def test_time_a_worker_spent_stopped_is_not_running() -> None:
    # A is frozen from 2 to 8 while B runs the job from 4 to 6; A resumes and is cancelled.
    freeze = [Freeze(A, 2.0, 8.0)]
    fenced = [ex(1, 1, A, 1, 1.0, 8.1, "C"), ex(1, 2, B, 1, 4.0, 6.0)]
    assert run(fenced, {1: ok(1, 2, B, 1)}, freezes=freeze).passed
    # ... but a resumed handler that goes on while the other still runs is a double run.
    still = [ex(1, 1, A, 1, 1.0, 9.5, "C"), ex(1, 2, B, 1, 4.0, 10.0)]
    report = run(still, {1: ok(1, 2, B, 1)}, freezes=freeze)
    assert len(report.double_runs) == 1


def test_two_runs_of_one_job_in_one_process_at_once_are_a_double_run() -> None:
    executions = [ex(1, 1, A, 1, 1.0, 3.0, "C"), ex(1, 2, A, 2, 2.0, 4.0)]
    assert len(run(executions, {1: ok(1, 2, A, 2)}).double_runs) == 1


def test_an_ack_from_an_earlier_attempt_is_stale() -> None:
    executions = [ex(1, 1, A, 1, 1.0, 2.0), ex(1, 2, B, 1, 5.0, 6.0)]
    rows = {1: JobRow(1, "succeeded", 2, [A, 1, 1])}
    report = run(executions, rows)
    assert [s["job_id"] for s in report.stale_acks] == [1]


def test_an_ack_superseded_by_a_later_claim_under_the_same_attempt_is_stale() -> None:
    # The server forgot A's claim; B claimed the job again under the same attempt number.
    executions = [ex(1, 1, A, 1, 1.0, 2.0), ex(1, 1, B, 1, 1.5, 3.0)]
    rows = {1: JobRow(1, "succeeded", 1, [A, 1, 1])}
    assert len(run(executions, rows).stale_acks) == 1


def test_an_ack_that_names_no_recorded_execution_is_stale() -> None:
    rows = {1: JobRow(1, "succeeded", 1, [A, 9, 1])}
    assert len(run([ex(1, 1, A, 1, 1.0, 2.0)], rows).stale_acks) == 1


def test_a_keyed_effect_accepted_twice_is_a_duplicate() -> None:
    # Two executions under one claim number both did the effect; the job succeeded there.
    executions = [ex(1, 1, A, 1, 1.0, 2.0), ex(1, 1, B, 1, 2.5, 3.0)]
    rows = {1: ok(1, 1, B, 1, "k")}
    report = run(executions, rows, key_jobs={"k": {1}})
    assert [d["key"] for d in report.dup_effects] == ["k"]


def test_two_jobs_for_one_key_are_a_duplicate() -> None:
    executions = [ex(1, 1, A, 1, 1.0, 2.0), ex(2, 1, B, 1, 1.0, 2.0)]
    rows = {1: ok(1, 1, A, 1, "k"), 2: ok(2, 1, B, 1, "k")}
    report = run(executions, rows, key_jobs={"k": {1, 2}})
    assert len(report.dup_effects) == 1


def test_a_keyed_effect_redone_after_a_crash_is_at_least_once_not_a_duplicate() -> None:
    killed = Process(A, 0.0, ended=2.5, killed=True, exit_code=-9)
    executions = [ex(1, 1, A, 1, 1.0, 2.0), ex(1, 2, B, 1, 6.0, 7.0)]
    report = run(executions, {1: ok(1, 2, B, 1, "k")}, key_jobs={"k": {1}},
                 processes=procs(killed))
    assert report.passed, report


def test_a_worker_that_exits_on_its_own_is_a_crash() -> None:
    crashed = Process(300, 0.0, ended=4.0, exit_code=1)
    killed = Process(301, 0.0, ended=4.0, killed=True, exit_code=-9)
    report = run([], {}, processes=procs(crashed, killed))
    assert [c["pid"] for c in report.crashes] == [300]


def test_a_worker_that_does_not_shut_down_cleanly_is_a_crash() -> None:
    slow = Process(300, 0.0, ended=9.0, stopped_by_suite=True, exit_code=-9,
                   shutdown_in_time=False)
    failing = Process(301, 0.0, ended=9.0, stopped_by_suite=True, exit_code=1)
    report = run([], {}, processes=procs(slow, failing))
    assert sorted(c["pid"] for c in report.crashes) == [300, 301]


def test_recovery_of_a_slot_is_its_first_accepted_completion_after_the_fault() -> None:
    replacement = Process(B, 3.0, slot=0)
    processes = {A: Process(A, 0.0, ended=2.0, killed=True, slot=0), B: replacement}
    executions = [ex(1, 1, A, 1, 1.0, None), ex(2, 1, B, 1, 3.5, 4.5),
                  ex(3, 1, B, 2, 4.0, 5.0)]
    rows = {1: ok(1, 2, B, 9), 2: ok(2, 1, B, 1), 3: ok(3, 1, B, 2)}
    faults = [Fault("kill", 2.0, 2.0, [A], slot=0)]
    (entry,) = recovery_times(faults, executions, rows, processes, reference_rate=10.0)
    assert entry["recovery"] == 2.5


def test_the_history_files_read_back_into_executions(tmp_path: Path) -> None:
    rec = Recorder(tmp_path)
    first, second = rec.next_seq(), rec.next_seq()
    rec.write("S", 7, 1, first)
    rec.write("S", 8, 1, second)
    rec.write("D", 7, 1, first)
    (tmp_path / "999.log").write_text("S 9 1 999 1 5.0 5.0\nS 9 1 999\n")  # a torn line
    found = {(e.job_id, e.outcome) for e in read_history(tmp_path)}
    assert found == {(7, "D"), (8, None), (9, None)}
