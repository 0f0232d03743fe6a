"""Random workflows, run by real workers, end as a small model of API.md says.

Hypothesis draws nested canvases (chains, groups and chords of up to 12 steps, some
`si`), steps that fail for good or once, steps cancelled before any worker starts, and
a cancel of the whole workflow at a random moment. The model (workflow_plans.py) says
how each step and the workflow end and what each step receives; the steps' history
(workflow_app.py) shows that each ran only after all its parents succeeded, with
exactly their results, never twice at once, and succeeded at most once.

The second property runs the same on worker processes, SIGKILLing some of them while
steps run: no workflow is stranded, and the outcome is still the model's.

Bounded for CI; `TASKRUNNER_PROPERTY_EXAMPLES=500 python -m pytest
tests/properties/test_workflow_model.py` runs each property for that many examples.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import drop_schema, new_schema_name
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from workflow_app import MAX_KILLS, STEP, read_history, register
from workflow_checks import Attempts, by_step, check_outcome, check_runs
from workflow_plans import (
    OK,
    TRANSIENT,
    Chain,
    Expected,
    Leaf,
    Plan,
    canvas,
    expected,
    numbered,
    plans,
)

from taskrunner import Job, TaskRunner

ROOT = Path(__file__).resolve().parents[2]
LONG = int(os.environ.get("TASKRUNNER_PROPERTY_EXAMPLES", "0"))
IN_PROCESS_EXAMPLES = LONG or 12
KILLED_EXAMPLES = LONG or 3
WORKFLOW_TIMEOUT = 60.0
WORKER_START_TIMEOUT = 30.0
EXAMPLE_SETTINGS = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


@pytest.fixture(scope="module")
def shared_schema(pg_dsn: str) -> Iterator[str]:
    """One migrated schema for every example: each example's workflow is its own."""
    schema = new_schema_name()

    async def migrate() -> None:
        async with TaskRunner(pg_dsn, schema=schema):
            pass

    asyncio.run(migrate())
    yield schema
    asyncio.run(drop_schema(pg_dsn, schema))


@pytest.fixture(scope="module")
def history_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("workflow-histories")


async def final_jobs(runner: TaskRunner, job_ids: list[int]) -> dict[int, Job]:
    """The steps by label (their place in job_ids)."""
    jobs = {}
    for label, job_id in enumerate(job_ids):
        job = await runner.get_job(job_id)
        assert job is not None, f"step {label} (job {job_id}) is gone"
        jobs[label] = job
    return jobs


async def cancel_steps(runner: TaskRunner, job_ids: list[int], model: Expected) -> None:
    """Cancel the steps the example chose, before any worker starts (one may already be
    cancelled as a dependant of another)."""
    for label in sorted(model.cancelled):
        await runner.cancel(job_ids[label])
    for label in model.cancelled:
        job = await runner.get_job(job_ids[label])
        assert job is not None
        assert job.status == "cancelled"


def running_pids(history: str) -> list[int]:
    """The processes of the attempts that started and have not ended, oldest first."""
    lines = read_history(history)
    ended = {(line["pid"], line["attempt"]) for line in lines if line["event"] != "start"}
    return [
        line["pid"]
        for line in lines
        if line["event"] == "start" and (line["pid"], line["attempt"]) not in ended
    ]


def starts(history: str) -> int:
    return sum(1 for line in read_history(history) if line["event"] == "start")


# ---- 1. workers in this process, and a cancel of the whole workflow ---------------------


async def in_process(
    dsn: str,
    schema: str,
    plan: Any,
    model: Expected,
    history: str,
    workers: int,
    concurrency: int,
    cancel_after: int | None,
) -> None:
    runners = [TaskRunner(dsn, schema=schema, pool_size=4) for _ in range(workers)]
    async with contextlib.AsyncExitStack() as stack:
        for runner in runners:
            register(runner)
            await stack.enter_async_context(runner)
        main = runners[0]
        wf = await main.enqueue_workflow(canvas(plan, main.tasks[STEP], history))
        assert len(wf.job_ids) == len(model.steps)
        await cancel_steps(main, wf.job_ids, model)
        running = asyncio.gather(
            *(
                r.run_worker(
                    concurrency=concurrency,
                    stop_when_idle=True,
                    poll_interval=0.05,
                    rescue_interval=0.5,
                    handle_signals=False,
                )
                for r in runners
            )
        )
        cancelled = None  # (steps it changed, statuses right after, when it returned)
        if cancel_after is not None:
            # The history is a file: polled, bounded by the workers' end.
            while not running.done() and starts(history) < cancel_after:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            if not running.done():
                changed = await main.cancel_workflow(wf.id)
                returned = time.time()
                cancelled = (changed, await final_jobs(main, wf.job_ids), returned)
        await asyncio.wait_for(running, WORKFLOW_TIMEOUT)
        done = await main.get_workflow(wf.id)
        assert done is not None
        assert done.status != "running", "the workflow is stranded: no worker has work left"
        jobs = await final_jobs(main, wf.job_ids)
        lines = read_history(history)
        check_runs(model, jobs, lines)
        event(
            "no cancel of the workflow"
            if cancelled is None
            else f"workflow cancelled while running: {cancelled[0] > 0}"
        )
        if cancelled is None or cancelled[0] == 0:  # no cancel, or it came after the end
            check_outcome(model, jobs, lines)
            assert done.status == model.status
            if model.status == "succeeded":
                assert await main.workflow_result(wf.id) == model.result
            return
        _, at_cancel, returned = cancelled
        assert done.status == "cancelled"
        steps = by_step(lines)
        for label, job in jobs.items():
            assert job.status.is_final, f"step {label} ended {job.status}"
            if job.status == "failed":
                assert model.steps[label].status == "failed"
            if at_cancel[label].status not in ("running", "succeeded", "failed"):
                assert job.status == "cancelled", f"step {label} ran after the cancel"
                late = [s for s in steps.get(label, Attempts()).starts if s["t"] > returned]
                assert not late, f"step {label} started after the workflow was cancelled"


@st.composite
def in_process_scenarios(draw: st.DrawFn) -> tuple[Plan, frozenset[int], int | None]:
    """A plan, the steps cancelled before the workers start, and after how many step
    starts the whole workflow is cancelled (None: never)."""
    plan = draw(plans())
    labels = [leaf.label for leaf in numbered(plan)]
    cancelled = draw(st.frozensets(st.sampled_from(labels), max_size=2))
    cancel_after = draw(st.integers(0, len(labels) // 2)) if draw(st.booleans()) else None
    return plan, cancelled, cancel_after


@pytest.mark.timeout(120 + 20 * IN_PROCESS_EXAMPLES)
@settings(max_examples=IN_PROCESS_EXAMPLES, **EXAMPLE_SETTINGS)  # type: ignore[arg-type]
@given(
    scenario=in_process_scenarios(),
    workers=st.integers(min_value=1, max_value=2),
    concurrency=st.integers(min_value=1, max_value=4),
)
def test_workflows_end_as_the_model_says_and_a_cancel_stops_what_has_not_started(
    pg_dsn: str,
    shared_schema: str,
    history_dir: Path,
    scenario: tuple[Plan, frozenset[int], int | None],
    workers: int,
    concurrency: int,
) -> None:
    plan, cancelled, cancel_after = scenario
    model = expected(plan, cancelled)
    history = str(history_dir / f"{uuid.uuid4().hex}.jsonl")
    asyncio.run(
        in_process(pg_dsn, shared_schema, plan, model, history, workers, concurrency, cancel_after)
    )


# ---- 2. worker processes, some SIGKILLed while steps run --------------------------------


class Workers:
    """`python -m tests.properties.workflow_app` processes; killed ones are replaced."""

    def __init__(self, dsn: str, schema: str, concurrency: int, logs: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        self.env.update(
            TASKRUNNER_DSN=dsn,
            TR_TEST_SCHEMA=schema,
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        self.concurrency = concurrency
        self.logs = logs
        self.processes: list[asyncio.subprocess.Process] = []
        self.killed: dict[int, float] = {}  # pid -> when it was surely dead

    async def start(self) -> asyncio.subprocess.Process:
        log = self.logs / f"worker-{uuid.uuid4().hex[:8]}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.properties.workflow_app",
                str(self.concurrency),
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        self.processes.append(proc)
        return proc

    async def kill(self, index: int, running: list[int]) -> None:
        """Kill a worker that runs a step (the latest to start) if one does, else the
        `index`-th alive one; start another in its place."""
        alive = [p for p in self.processes if p.returncode is None]
        busy = [p for pid in reversed(running) for p in alive if p.pid == pid]
        victim = busy[0] if busy else alive[index % len(alive)]
        victim.send_signal(signal.SIGKILL)
        await asyncio.wait_for(victim.wait(), 10)
        self.killed[victim.pid] = time.time()
        await self.start()

    async def stop(self) -> None:
        for proc in self.processes:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@contextlib.asynccontextmanager
async def worker_processes(
    dsn: str, schema: str, concurrency: int, logs: Path
) -> AsyncIterator[Workers]:
    workers = Workers(dsn, schema, concurrency, logs)
    try:
        yield workers
    finally:
        await workers.stop()


async def with_kills(
    dsn: str,
    schema: str,
    plan: Any,
    model: Expected,
    history: str,
    concurrency: int,
    kills: list[tuple[int, int]],
    logs: Path,
) -> int:
    """Run the example; how many steps the kills cut short."""
    async with TaskRunner(dsn, schema=schema, pool_size=2) as runner:
        register(runner)
        wf = await runner.enqueue_workflow(canvas(plan, runner.tasks[STEP], history))
        await cancel_steps(runner, wf.job_ids, model)
        async with worker_processes(dsn, schema, concurrency, logs) as workers:
            for _ in range(2):
                await workers.start()
            async with asyncio.timeout(WORKFLOW_TIMEOUT):
                for after, victim in sorted(kills):
                    while starts(history) < after:
                        found = await runner.get_workflow(wf.id)
                        if found is None or found.status != "running":
                            break
                        await asyncio.sleep(0.01)
                    else:
                        await workers.kill(victim, running_pids(history))
            try:
                done = await runner.wait_workflow(wf.id, timeout=WORKFLOW_TIMEOUT)
            except TimeoutError:
                raise AssertionError(
                    f"workflow {wf.id} stranded after the kills of {sorted(workers.killed)}"
                ) from None
        jobs = await final_jobs(runner, wf.job_ids)
        lines = read_history(history)
        cut = running_pids(history)
        event(f"workers killed: {len(workers.killed)}, steps cut short: {len(cut)}")
        check_runs(model, jobs, lines, workers.killed)
        check_outcome(model, jobs, lines)
        assert done.status == model.status
        if model.status == "succeeded":
            assert await runner.workflow_result(wf.id) == model.result
    return len(cut)


@st.composite
def killing_scenarios(draw: st.DrawFn) -> tuple[Plan, frozenset[int], list[tuple[int, int]]]:
    """A plan whose steps run long enough to be killed while they do, at most one step
    cancelled before the workers start, and the kills: after how many step starts, and
    which worker when none is running a step (else the one that is)."""
    plan = draw(plans(max_pause_ms=200))
    labels = [leaf.label for leaf in numbered(plan)]
    cancelled = draw(st.frozensets(st.sampled_from(labels), max_size=1))
    kills = draw(
        st.lists(
            st.tuples(st.integers(1, max(1, (len(labels) + 1) // 2)), st.integers(0, 1)),
            min_size=1,
            max_size=MAX_KILLS,
        )
    )
    return plan, cancelled, kills


# A chain whose first step is sure to be cut short by the kill: every run has one.
CUT_SHORT = (
    Chain([Leaf(OK, False, 400), Leaf(TRANSIENT, False, 0), Leaf(OK, True, 0)]),
    frozenset[int](),
    [(1, 0)],
)


@pytest.mark.slow
@pytest.mark.timeout(120 + 60 * KILLED_EXAMPLES)
@settings(max_examples=KILLED_EXAMPLES, **EXAMPLE_SETTINGS)  # type: ignore[arg-type]
@given(scenario=killing_scenarios(), concurrency=st.integers(min_value=1, max_value=3))
@example(scenario=CUT_SHORT, concurrency=2)
def test_sigkilled_worker_processes_strand_no_workflow_and_change_no_outcome(
    pg_dsn: str,
    shared_schema: str,
    history_dir: Path,
    scenario: tuple[Plan, frozenset[int], list[tuple[int, int]]],
    concurrency: int,
) -> None:
    plan, cancelled, kills = scenario
    numbered(plan)
    model = expected(plan, cancelled)
    history = str(history_dir / f"{uuid.uuid4().hex}.jsonl")
    cut = asyncio.run(
        with_kills(pg_dsn, shared_schema, plan, model, history, concurrency, kills, history_dir)
    )
    if scenario is CUT_SHORT:
        assert cut == 1, "the kill was meant to cut the first step short"
