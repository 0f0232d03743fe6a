"""Idempotency keys against a model: random sequences of enqueues (single and batched) over
two tasks, three keys (and no key) and three argument sets.

The model: the first enqueue of a (task, key) makes its job; a later one with the same
arguments returns that job (deduplicated); with other arguments it conflicts and writes
nothing. A batch is all or nothing. Every example runs on a fresh schema.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import drop_schema, new_schema_name
from hypothesis import event, given, settings
from hypothesis import strategies as st

from taskrunner import IdempotencyConflict, Job, TaskRunner

TASKS = ("model.a", "model.b")
KEYS = (None, "k1", "k2", "k3")
ARGS = (1, 2, 3)

Call = tuple[str | None, int]  # (idempotency key, argument)
CALLS = st.tuples(st.sampled_from(KEYS), st.sampled_from(ARGS))
# An operation: one task, and one call (enqueue) or a few (enqueue_many).
OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(TASKS),
        st.booleans(),  # batched?
        st.lists(CALLS, min_size=1, max_size=3),
    ).map(lambda op: (op[0], op[1], op[2] if op[1] else op[2][:1])),
    min_size=1,
    max_size=12,
)


@dataclass
class Model:
    held: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)  # -> (arg, id)
    keyless: int = 0

    def expect(self, task: str, calls: list[Call]) -> list[tuple[str, Any]] | None:
        """Per call ("new", None) or ("same", job id or ("index", i)); None for a conflict."""
        pending: dict[tuple[str, str], tuple[int, Any]] = dict(self.held)
        expected: list[tuple[str, Any]] = []
        for index, (key, arg) in enumerate(calls):
            if key is None:
                expected.append(("new", None))
                continue
            holder = pending.get((task, key))
            if holder is None:
                pending[(task, key)] = (arg, ("index", index))
                expected.append(("new", None))
            elif holder[0] == arg:
                expected.append(("same", holder[1]))
            else:
                return None
        return expected

    def apply(self, task: str, calls: list[Call], jobs: list[Job]) -> None:
        for (key, arg), job in zip(calls, jobs, strict=True):
            if key is None:
                self.keyless += 1
            else:
                self.held.setdefault((task, key), (arg, job.id))


async def enqueue(runner: TaskRunner, task: str, batched: bool, calls: list[Call]) -> list[Job]:
    if not batched:
        ((key, arg),) = calls
        return [await runner.enqueue(task, arg, idempotency_key=key)]
    return await runner.enqueue_many(
        task, [(arg,) for _, arg in calls], idempotency_keys=[key for key, _ in calls]
    )


async def check_sequence(dsn: str, operations: list[tuple[str, bool, list[Call]]]) -> None:
    schema = new_schema_name()
    try:
        async with TaskRunner(dsn, schema=schema, pool_size=2) as runner:
            for name in TASKS:

                @runner.task(name=name)
                async def handler(n: int) -> None: ...

            model = Model()
            for task, batched, calls in operations:
                expected = model.expect(task, calls)
                rows_before = len(await runner.list_jobs(limit=1000))
                if expected is None:
                    try:
                        await enqueue(runner, task, batched, calls)
                    except IdempotencyConflict:
                        pass
                    else:
                        raise AssertionError(f"{task} {calls}: expected a conflict")
                    assert len(await runner.list_jobs(limit=1000)) == rows_before
                    event("a conflict")
                    continue
                jobs = await enqueue(runner, task, batched, calls)
                for index, ((kind, ref), job) in enumerate(zip(expected, jobs, strict=True)):
                    if kind == "new":
                        assert not job.deduplicated, (task, calls, index)
                    else:
                        holder = jobs[ref[1]].id if isinstance(ref, tuple) else ref
                        assert job.deduplicated, (task, calls, index)
                        assert job.id == holder, (task, calls, index)
                        event("a deduplicated job" + (" in a batch" if batched else ""))
                model.apply(task, calls, jobs)

            stored = await runner.list_jobs(limit=1000)
    finally:
        await drop_schema(dsn, schema)

    keyed = [j for j in stored if j.idempotency_key is not None]
    assert sorted((j.task, j.idempotency_key) for j in keyed) == sorted(model.held)  # one each
    for job in keyed:
        arg, job_id = model.held[(job.task, job.idempotency_key)]  # type: ignore[index]
        assert (job.id, job.args) == (job_id, [arg])
    assert len(stored) - len(keyed) == model.keyless


@pytest.mark.slow
@settings(max_examples=30, deadline=None, database=None)
@given(operations=OPERATIONS)
def test_idempotency_keys_behave_like_the_model(pg_dsn: str, operations: Any) -> None:
    asyncio.run(check_sequence(pg_dsn, operations))
