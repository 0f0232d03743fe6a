"""Workflows in the bare queue: steps and edges written in one transaction; their
progress is the database's own (the trigger of migration 0010), so this module only
writes, reads, cancels and retries. SQL in sql/workflows.sql.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias

import asyncpg
import msgspec

from taskrunner.errors import DatabaseError, IdempotencyConflict
from taskrunner.queue.errors import translate_errors
from taskrunner.queue.notify import cancel_channel, jobs_channel
from taskrunner.queue.statements import statements_for

# A pool or one connection (asyncpg ships no types, so this is documentation).
Executor: TypeAlias = Any
_KEY_ROUNDS = 5
BROKEN = frozenset({"failed", "cancelled"})


class NewStep(msgspec.Struct, frozen=True, kw_only=True):
    """A step to insert. `parents` are the positions of the steps it waits for, in the
    order of its input; `input` says what it receives from them (None, "one", "list", or
    nested lists of positions into `parents`)."""

    ord: int
    task: str
    queue: str
    args: msgspec.Raw
    kwargs: msgspec.Raw
    priority: int
    max_attempts: int
    parents: list[int]
    input: Any = None


class NewWorkflow(msgspec.Struct, frozen=True, kw_only=True):
    steps: list[NewStep]
    outputs: list[int]  # positions of the steps whose results make the workflow's result
    shape: Any  # the canvas with step positions, for display
    output: Any  # how the outputs' results nest: "one", "list" or nested positions
    request_id: str
    output_tasks: list[str] = []  # the outputs' tasks (their results decode by them)
    idempotency_key: str | None = None
    fingerprint: str | None = None


class WorkflowRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    status: str
    job_ids: list[int]
    created_at: datetime
    finished_at: datetime | None
    request_id: str | None
    output: Any = None
    shape: Any = None
    output_tasks: list[str] | None = None  # None: written before tasks were kept


class InsertedWorkflow(msgspec.Struct, frozen=True, kw_only=True):
    workflow: WorkflowRow
    deduplicated: bool


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def _stored_output(workflow: NewWorkflow) -> str:
    """The workflows.output column: the nesting and the tasks of the steps it names."""
    return _encoder.encode({"nest": workflow.output, "tasks": workflow.output_tasks}).decode()


def _workflow_row(record: Any) -> WorkflowRow:
    shape = record.get("shape")
    output = _decoder.decode(record["output"]) if record["output"] is not None else None
    tasks = None
    if isinstance(output, dict) and "nest" in output:
        output, tasks = output["nest"], output.get("tasks")
    return WorkflowRow(
        id=record["id"],
        status=record["status"],
        job_ids=list(record["job_ids"] or []),
        created_at=record["created_at"],
        finished_at=record["finished_at"],
        request_id=record["request_id"],
        output=output,
        shape=_decoder.decode(shape) if shape is not None else None,
        output_tasks=tasks,
    )


class WorkflowStore:
    """Workflows over one database (a pool or a connection) and schema."""

    def __init__(self, db: Executor, schema: str) -> None:
        self.db = db
        self.sql = statements_for(schema)
        self.jobs_channel = jobs_channel(schema)
        self.cancel_channel = cancel_channel(schema)

    @translate_errors
    async def insert(
        self,
        workflow: NewWorkflow,
        *,
        connection: asyncpg.Connection | None = None,
        idempotency_ttl: float | None = None,
    ) -> InsertedWorkflow:
        """Every step and edge in one transaction (a savepoint inside the caller's, with
        `connection`). A key held by a workflow of the same definition returns it; of
        another, IdempotencyConflict; either way nothing is written."""
        if connection is not None:
            async with connection.transaction():
                return await self._insert(connection, workflow, idempotency_ttl)
        async with self.db.acquire() as conn, conn.transaction():
            return await self._insert(conn, workflow, idempotency_ttl)

    async def _insert(
        self, conn: Executor, workflow: NewWorkflow, ttl: float | None
    ) -> InsertedWorkflow:
        key = workflow.idempotency_key
        for _ in range(_KEY_ROUNDS):
            if key is not None:
                await conn.execute(self.sql["release_expired_workflow_key"], key, ttl)
            record = await conn.fetchrow(
                self.sql["insert_workflow"],
                _encoder.encode(workflow.shape).decode(),
                _stored_output(workflow),
                len(workflow.steps),
                key,
                workflow.fingerprint,
                workflow.request_id,
            )
            if record is not None:
                break
            holder = await conn.fetchrow(self.sql["get_workflow_by_key"], key)
            if holder is None:  # the holder's transaction rolled back: ask again
                continue
            if holder["fingerprint"] != workflow.fingerprint:
                assert key is not None
                raise IdempotencyConflict("workflow", key, None)
            return InsertedWorkflow(workflow=_workflow_row(holder), deduplicated=True)
        else:
            raise DatabaseError(f"could not settle workflow key {key!r} in {_KEY_ROUNDS} rounds")
        workflow_id = record["id"]
        rows = await conn.fetch(
            self.sql["insert_workflow_steps"],
            workflow_id,
            _encoder.encode(workflow.steps).decode(),
            workflow.outputs,
            self.jobs_channel,
            workflow.request_id,
        )
        if len(rows) != len(workflow.steps):  # cannot happen: nothing here can conflict
            raise DatabaseError(f"inserted {len(rows)} steps of {len(workflow.steps)}")
        inserted = _workflow_row(record)
        return InsertedWorkflow(
            workflow=msgspec.structs.replace(inserted, job_ids=[r["id"] for r in rows]),
            deduplicated=False,
        )

    @translate_errors
    async def get(self, workflow_id: int) -> WorkflowRow | None:
        record = await self.db.fetchrow(self.sql["get_workflow"], workflow_id)
        return _workflow_row(record) if record is not None else None

    @translate_errors
    async def outputs(self, workflow_id: int) -> list[tuple[bool, bytes | None]]:
        """(done, result as JSON) of the steps that make the workflow's result, in order."""
        rows = await self.db.fetch(self.sql["workflow_outputs"], workflow_id)
        return [
            (r["done"], r["result"].encode() if r["result"] is not None else None) for r in rows
        ]

    @translate_errors
    async def cancel(self, workflow_id: int) -> int:
        """Steps cancelled (or asked to stop, when running)."""
        rows = await self.db.fetch(self.sql["cancel_workflow"], workflow_id, self.cancel_channel)
        return len(rows)

    @translate_errors
    async def retry(self, workflow_id: int, root: int | None = None) -> list[int]:
        """Failed and cancelled steps run again (only `root` and the steps cancelled
        below it, when given) — each one whose parents can all still succeed; returns
        their ids."""
        if isinstance(self.db, asyncpg.Pool):
            async with self.db.acquire() as conn, conn.transaction():
                return await self._retry(conn, workflow_id, root)
        async with self.db.transaction():
            return await self._retry(self.db, workflow_id, root)

    async def _retry(self, conn: Executor, workflow_id: int, root: int | None) -> list[int]:
        if await conn.fetchrow(self.sql["lock_workflow"], workflow_id) is None:
            return []
        statuses = {
            r["id"]: r["status"]
            for r in await conn.fetch(self.sql["workflow_steps_of"], workflow_id)
        }
        edges = await conn.fetch(self.sql["workflow_edges_of"], list(statuses))
        parents: dict[int, list[tuple[int, bool]]] = {}
        children: dict[int, list[int]] = {}
        for e in edges:
            parents.setdefault(e["child_id"], []).append((e["parent_id"], e["done"]))
            children.setdefault(e["parent_id"], []).append(e["child_id"])
        chosen = _retry_set(statuses, parents, children, root)
        if not chosen:
            return []
        ids = sorted(chosen)
        remaining = [sum(1 for _, done in parents.get(i, ()) if not done) for i in ids]
        rows = await conn.fetch(
            self.sql["retry_workflow_steps"], workflow_id, ids, remaining, self.jobs_channel
        )
        return sorted(r["id"] for r in rows)


def _retry_set(
    statuses: dict[int, str],
    parents: dict[int, list[tuple[int, bool]]],
    children: dict[int, list[int]],
    root: int | None,
) -> set[int]:
    """The broken steps to run again: all of them, or `root` and the cancelled steps
    below it; less every step with a parent still to succeed that never can (broken and
    not retried, or gone), until none is left (a fixpoint)."""
    if root is None:
        chosen = {i for i, status in statuses.items() if status in BROKEN}
    elif statuses.get(root) in BROKEN:
        chosen, todo = {root}, [root]
        while todo:
            for child in children.get(todo.pop(), ()):
                if statuses.get(child) == "cancelled" and child not in chosen:
                    chosen.add(child)
                    todo.append(child)
    else:
        return set()
    changed = True
    while changed:
        changed = False
        for step in sorted(chosen):
            for parent, done in parents.get(step, ()):
                if done or parent in chosen:
                    continue
                if statuses.get(parent, "gone") in BROKEN | {"gone"}:
                    chosen.discard(step)
                    changed = True
                    break
    return chosen
