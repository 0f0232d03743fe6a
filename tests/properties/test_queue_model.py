"""The queue against a model: random sequences of verbs leave the database exactly where a
small Python model of job states says they should.

Hypothesis drives a synchronous state machine; each step runs its coroutine on one event
loop owned by the test. Every example gets a fresh schema on a connection of its own.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any, ClassVar, TypeVar

import pytest
from conftest import drop_schema, new_schema_name
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from taskrunner.db import Migrator, ResolvedDsn, connect
from taskrunner.errors import IdempotencyConflict
from taskrunner.queue import (
    Completion,
    Failure,
    JobQueue,
    Lease,
    LeaseExtension,
    NewJob,
)

R = TypeVar("R")

FINISHED = {"succeeded", "failed", "cancelled"}
KEYS = st.none() | st.sampled_from(["k1", "k2"])
ARGS = st.sampled_from([b"[1]", b"[2]"])
RETRY_IN = st.sampled_from([None, 0.0, 3600.0])  # fail for good, retry now, retry later


@dataclass(frozen=True)
class ModelJob:
    id: int
    status: str
    priority: int
    max_attempts: int
    args: bytes
    key: str | None
    attempts: int = 0
    due: bool = True  # run_at <= now(); only "retry later" makes it False
    clock: int = 0  # orders run_at: each statement that sets run_at gets a later tick
    lease_id: int | None = None
    cancel_requested: bool = False


class QueueMachine(RuleBasedStateMachine):
    dsn: ClassVar[str]
    loop: ClassVar[asyncio.AbstractEventLoop]

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[int, ModelJob] = {}
        self.stale: list[Lease] = []  # leases that were taken away (fencing)
        self.leases_seen: set[int] = set()
        self.ticks = itertools.count(1)
        self.schema = new_schema_name()
        self.conn = None
        self.conn = self.run(connect(ResolvedDsn(self.dsn, "test")))
        self.run(Migrator(self.schema).migrate(self.conn))
        self.queue = JobQueue(self.conn, self.schema)

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        if self.conn is not None:
            self.run(self.conn.close())
        self.run(drop_schema(self.dsn, self.schema))

    # ---- helpers -------------------------------------------------------------------

    def ids_with(self, *statuses: str) -> list[int]:
        return sorted(i for i, j in self.jobs.items() if j.status in statuses)

    def lease_of(self, job_id: int) -> Lease:
        lease_id = self.jobs[job_id].lease_id
        assert lease_id is not None
        return Lease(job_id=job_id, lease_id=lease_id)

    def set(self, job_id: int, **changes: Any) -> None:
        self.jobs[job_id] = replace(self.jobs[job_id], **changes)

    def requeued(self, job_id: int, *, due: bool = True, **changes: Any) -> None:
        """Queued again, run_at set by this statement (now, or later when not due)."""
        self.set(job_id, status="queued", due=due, clock=next(self.ticks), lease_id=None, **changes)

    def ended(self, job_id: int, status: str) -> None:
        self.set(job_id, status=status, lease_id=None)

    def take_lease(self, job_id: int) -> Lease:
        lease = self.lease_of(job_id)
        self.set(job_id, lease_id=None)
        return lease

    # ---- enqueue -------------------------------------------------------------------

    @rule(
        specs=st.lists(
            st.tuples(KEYS, ARGS, st.integers(0, 2), st.integers(1, 3)), min_size=1, max_size=3
        ),
        ttl_zero=st.booleans(),
    )
    def enqueue(self, specs: list[tuple[str | None, bytes, int, int]], ttl_zero: bool) -> None:
        batch = [
            NewJob(task="t", args=args, priority=p, max_attempts=m, idempotency_key=key)
            for key, args, p, m in specs
        ]
        # The model, all or nothing: work on a copy, keep it only if nothing conflicts.
        jobs = dict(self.jobs)
        expected: list[int | None] = []  # the holder each job dedupes to, or None if new
        conflict = False
        for job in batch:
            holders = [
                j for j in jobs.values() if job.idempotency_key and j.key == job.idempotency_key
            ]
            holder = holders[0] if holders else None
            if holder is not None and ttl_zero and holder.status in FINISHED:
                jobs[holder.id] = replace(holder, key=None)  # its key is free again
                holder = None
            if holder is None:
                expected.append(None)
                jobs[-len(expected)] = ModelJob(  # placeholder id until the database says
                    id=-len(expected), status="queued", priority=job.priority,
                    max_attempts=job.max_attempts, args=job.args, key=job.idempotency_key,
                )  # fmt: skip
            elif holder.args == job.args:
                expected.append(holder.id)
            else:
                conflict = True
                break

        try:
            results = self.run(
                self.queue.enqueue_many(batch, idempotency_ttl=0 if ttl_zero else 3600)
            )
        except IdempotencyConflict:
            assert conflict, "the queue saw a conflict the model did not"
            return
        assert not conflict, "the model expected a conflict"

        tick = next(self.ticks)
        placeholders: dict[int, int] = {}
        for index, (result, holder_id) in enumerate(zip(results, expected, strict=True)):
            if holder_id is not None and holder_id > 0:
                assert result.deduplicated
                assert result.job.id == holder_id
            elif holder_id is not None:  # a duplicate of a job new in this batch
                assert result.deduplicated
                assert result.job.id == placeholders[holder_id]
            else:
                assert not result.deduplicated
                assert result.job.id not in self.jobs
                placeholders[-(index + 1)] = result.job.id
        for placeholder, job_id in placeholders.items():
            jobs[job_id] = replace(jobs.pop(placeholder), id=job_id, clock=tick)
        assert all(i > 0 for i in jobs)
        self.jobs = jobs

    # ---- claim and acks ------------------------------------------------------------

    @precondition(lambda self: any(j.status == "queued" and j.due for j in self.jobs.values()))
    @rule(limit=st.integers(1, 3))
    def claim(self, limit: int) -> None:
        runnable = [j for j in self.jobs.values() if j.status == "queued" and j.due]
        runnable.sort(key=lambda j: (-j.priority, j.clock, j.id))
        expected = [j.id for j in runnable[:limit]]

        claimed = self.run(self.queue.claim(["t"], limit=limit, owner="w", lease=60))

        assert [j.id for j in claimed] == expected
        for job in claimed:
            assert job.lease_id is not None
            assert job.lease_id not in self.leases_seen
            self.leases_seen.add(job.lease_id)
            self.set(
                job.id, status="running", attempts=self.jobs[job.id].attempts + 1,
                lease_id=job.lease_id,
            )  # fmt: skip

    @precondition(lambda self: self.ids_with("running"))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.ids_with("running")))
        status = "succeeded"  # a returned handler wins over a cancel that came too late

        ack = self.run(self.queue.complete_many([Completion(lease=self.lease_of(job_id))]))

        assert ack.applied == {job_id: status}
        assert ack.lost == []
        self.ended(job_id, status)

    @precondition(lambda self: self.ids_with("running"))
    @rule(data=st.data(), retry_in=RETRY_IN)
    def fail(self, data: st.DataObject, retry_in: float | None) -> None:
        job_id = data.draw(st.sampled_from(self.ids_with("running")))
        job = self.jobs[job_id]

        ack = self.run(
            self.queue.fail_many(
                [Failure(lease=self.lease_of(job_id), error="x", retry_in=retry_in)]
            )
        )

        if job.cancel_requested:
            status = "cancelled"
            self.ended(job_id, status)
        elif retry_in is not None and job.attempts < job.max_attempts:
            status = "queued"
            self.requeued(job_id, due=retry_in == 0)
        else:
            status = "failed"
            self.ended(job_id, status)
        assert ack.applied == {job_id: status}

    @precondition(lambda self: self.ids_with("running"))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.ids_with("running")))
        job = self.jobs[job_id]

        ack = self.run(self.queue.release_many([self.lease_of(job_id)]))

        if job.cancel_requested:
            self.ended(job_id, "cancelled")
        else:
            self.requeued(job_id, attempts=job.attempts - 1)  # the claim's attempt given back
        assert ack.applied == {job_id: self.jobs[job_id].status}

    @precondition(lambda self: self.ids_with("running"))
    @rule()
    def extend_every_lease(self) -> None:
        running = self.ids_with("running")
        renew = self.run(
            self.queue.extend_leases(
                [LeaseExtension(lease=self.lease_of(i), seconds=60) for i in running]
            )
        )
        assert sorted(renew.renewed) == running
        assert renew.lost == []
        assert sorted(renew.cancel_requested) == [
            i for i in running if self.jobs[i].cancel_requested
        ]

    # ---- lease expiry and fencing --------------------------------------------------

    @precondition(lambda self: self.ids_with("running"))
    @rule(data=st.data())
    def expire_a_lease_and_rescue(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.ids_with("running")))
        job = self.jobs[job_id]
        self.run(
            self.conn.execute(
                f"UPDATE \"{self.schema}\".jobs SET lease_expires_at = now() - interval '1 s' "
                "WHERE id = $1",
                job_id,
            )
        )

        rescued = self.run(self.queue.rescue_expired())

        self.stale.append(self.take_lease(job_id))
        if job.cancel_requested:
            self.ended(job_id, "cancelled")
        elif job.attempts >= job.max_attempts:
            self.ended(job_id, "failed")
        else:  # queued again in its place: its run_at is kept
            self.set(job_id, status="queued", lease_id=None)
        assert rescued == [(job_id, self.jobs[job_id].status)]

    @precondition(lambda self: self.stale)
    @rule(data=st.data(), verb=st.sampled_from(["complete", "fail", "release", "extend"]))
    def ack_with_a_lease_that_was_taken_away(self, data: st.DataObject, verb: str) -> None:
        lease = data.draw(st.sampled_from(self.stale))
        if verb == "complete":
            lost = self.run(self.queue.complete_many([Completion(lease=lease)])).lost
        elif verb == "fail":
            lost = self.run(self.queue.fail_many([Failure(lease=lease, error="late")])).lost
        elif verb == "release":
            lost = self.run(self.queue.release_many([lease])).lost
        else:
            lost = self.run(
                self.queue.extend_leases([LeaseExtension(lease=lease, seconds=60)])
            ).lost
        assert lost == [lease]  # and the invariants check that nothing changed

    # ---- admin ---------------------------------------------------------------------
    # One rule for the four verbs, so that they (always applicable, to any job or to an
    # unknown id) do not crowd out the claim and ack rules.

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), verb=st.sampled_from(["cancel", "pause", "resume", "retry"]))
    def admin(self, data: st.DataObject, verb: str) -> None:
        job_id = data.draw(st.sampled_from([*sorted(self.jobs), 10**9]))  # or an unknown id
        job = self.jobs.get(job_id)
        status = job.status if job is not None else None

        done = self.run(getattr(self.queue, verb)(job_id))

        if verb == "cancel" and status in ("queued", "paused"):
            self.set(job_id, status="cancelled", cancel_requested=False)
        elif verb == "cancel" and status == "running" and job and not job.cancel_requested:
            self.set(job_id, cancel_requested=True)
        elif verb == "pause" and status == "queued":
            self.set(job_id, status="paused")
        elif verb == "resume" and status == "paused":
            self.set(job_id, status="queued")  # keeps its run_at
        elif verb == "retry" and status in ("failed", "cancelled"):
            self.requeued(job_id, attempts=0, cancel_requested=False)
        else:
            assert done is False, (verb, job)
            return
        assert done is True, (verb, job)

    # ---- invariants ----------------------------------------------------------------

    @invariant()
    def the_database_agrees_with_the_model(self) -> None:
        rows = self.run(
            self.conn.fetch(
                "SELECT id, status::text, attempts, lease_id, cancel_requested, idempotency_key,"
                f' run_at <= now() AS due FROM "{self.schema}".jobs ORDER BY id'
            )
        )
        stored = {r["id"]: r for r in rows}
        assert len(stored) == len(rows) == len(self.jobs)  # one row, so one state, per job
        assert set(stored) == set(self.jobs)
        for job_id, job in self.jobs.items():
            row = stored[job_id]
            assert row["status"] == job.status, job
            assert row["attempts"] == job.attempts, job
            assert row["lease_id"] == job.lease_id, job
            assert row["cancel_requested"] == job.cancel_requested, job
            assert row["idempotency_key"] == job.key, job
            if job.status == "queued":
                assert row["due"] == job.due, job

    @invariant()
    def each_job_is_held_by_at_most_one_live_lease(self) -> None:
        live = [j.lease_id for j in self.jobs.values() if j.lease_id is not None]
        assert len(live) == len(set(live))
        assert all((j.lease_id is not None) == (j.status == "running") for j in self.jobs.values())
        for lease in self.stale:
            assert self.jobs[lease.job_id].lease_id != lease.lease_id


@pytest.mark.slow
@pytest.mark.timeout(600)  # passing takes seconds; shrinking a failure takes longer
def test_the_queue_behaves_like_its_model_under_random_sequences_of_verbs(pg_dsn: str):
    loop = asyncio.new_event_loop()
    QueueMachine.dsn = pg_dsn
    QueueMachine.loop = loop
    try:
        run_state_machine_as_test(
            QueueMachine,
            settings=settings(
                max_examples=25,
                stateful_step_count=30,
                deadline=None,
                database=None,
                report_multiple_bugs=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        loop.close()
