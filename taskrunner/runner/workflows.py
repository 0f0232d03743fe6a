"""Workflow verbs: enqueue_workflow, get_workflow, wait_workflow, workflow_result,
cancel_workflow, retry_workflow.

A part of TaskRunner kept apart. Every step is checked here (its task registered, its
arguments against the signature, the result it receives aside) before anything is
written; the database then moves the workflow along by itself (migration 0010), so
nothing here runs while a workflow does.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import asyncpg
import msgspec

from taskrunner.errors import InvalidArguments, JobCancelled, JobFailed, TaskRunnerError
from taskrunner.jobs import Job
from taskrunner.limits import MAX_TIMEOUT_SECONDS, check_job_id, check_seconds
from taskrunner.queue.workflows import NewStep, NewWorkflow, WorkflowRow, WorkflowStore
from taskrunner.runner.canvas import Canvas, Compiled, assemble, compile_canvas
from taskrunner.runner.codec import ArgumentsError, decode_json
from taskrunner.runner.context import current_request_id, new_request_id
from taskrunner.runner.options import Options, check_connection, check_key
from taskrunner.runner.results import typed_result

if TYPE_CHECKING:
    from taskrunner.queue import JobQueue
    from taskrunner.runner.tasks import Task

WorkflowStatus = Literal["running", "succeeded", "failed", "cancelled"]
FINAL_WORKFLOW_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
_canonical = msgspec.json.Encoder(order="sorted")


class Workflow(msgspec.Struct, frozen=True, kw_only=True):
    """A workflow as stored. `job_ids` are its steps in the order they were written."""

    id: int
    status: WorkflowStatus
    job_ids: list[int]
    created_at: datetime
    finished_at: datetime | None
    request_id: str | None
    deduplicated: bool = False

    @classmethod
    def from_row(cls, row: WorkflowRow, *, deduplicated: bool = False) -> Workflow:
        return cls(
            id=row.id,
            status=row.status,  # type: ignore[arg-type]  # the table's CHECK holds it
            job_ids=row.job_ids,
            created_at=row.created_at,
            finished_at=row.finished_at,
            request_id=row.request_id,
            deduplicated=deduplicated,
        )


class WorkflowTree(msgspec.Struct, frozen=True, kw_only=True):
    """A workflow, its canvas and its steps (None for a step whose row is gone)."""

    workflow: Workflow
    shape: Any
    steps: list[Job | None]


class WorkflowNotFound(TaskRunnerError, LookupError):
    """No workflow has that id."""

    def __init__(self, workflow_id: int) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"no workflow with id {workflow_id}")

    def __str__(self) -> str:
        return str(self.args[0])


class WorkflowVerbs:
    """The workflow verbs of TaskRunner (a part of it, kept apart)."""

    if TYPE_CHECKING:
        schema: str
        tasks: dict[str, Task[..., Any]]

        @property
        def job_queue(self) -> JobQueue: ...

        def _task_for(self, task: Task[..., Any] | str) -> Task[..., Any]: ...

    @property
    def workflow_store(self) -> WorkflowStore:
        queue = self.job_queue
        store: WorkflowStore | None = getattr(queue, "_workflow_store", None)
        if store is None:
            store = WorkflowStore(queue.db, self.schema)
            queue._workflow_store = store  # type: ignore[attr-defined]  # one per pool
        return store

    async def enqueue_workflow(
        self,
        canvas: Canvas,
        *,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        connection: asyncpg.Connection | None = None,
    ) -> Workflow:
        """Write every step of `canvas` in one transaction (inside the caller's, with
        `connection`), with one request id: `request_id`, else the current context's,
        else a new one. With `idempotency_key`, the same key and definition return the
        existing workflow (`deduplicated`); another definition raises
        IdempotencyConflict. Nothing is written when any step does not fit."""
        compiled = compile_canvas(canvas)
        if idempotency_key is not None:
            check_key(idempotency_key, None, None)  # type: ignore[arg-type]
        if connection is not None:
            check_connection(connection, None)
        steps = [self._new_step(index, step) for index, step in enumerate(compiled.steps)]
        chosen = Options.build(
            compiled.steps[0].step.task, request_id, None, None, None, None, None
        ).request_id
        new = NewWorkflow(
            steps=[s for s, _ in steps],
            outputs=compiled.outputs,
            shape=compiled.shape,
            output=compiled.output,
            output_tasks=[steps[i][0].task for i in compiled.outputs],
            request_id=chosen or current_request_id() or new_request_id(),
            idempotency_key=idempotency_key,
            fingerprint=_fingerprint(compiled, [f for _, f in steps])
            if idempotency_key is not None
            else None,
        )
        inserted = await self.workflow_store.insert(new, connection=connection)
        return Workflow.from_row(inserted.workflow, deduplicated=inserted.deduplicated)

    def _new_step(self, index: int, compiled: Any) -> tuple[NewStep, str]:
        step = compiled.step
        task = self._task_for(step.task)
        try:
            if compiled.input is None:
                call = task.codec.encode(step.args, step.kwargs)
            else:
                call = task.codec.encode_after_result(step.args, step.kwargs)
        except ArgumentsError as exc:
            raise InvalidArguments(task.name, f"step #{index}: {exc}") from None
        options = Options.build(task, None, None, None, None, None, None)
        new = NewStep(
            ord=index,
            task=task.name,
            queue=options.queue,
            args=msgspec.Raw(call.args),
            kwargs=msgspec.Raw(call.kwargs),
            priority=options.priority,
            max_attempts=options.max_attempts,
            parents=compiled.parents,
            input=compiled.input,
        )
        return new, call.fingerprint

    async def get_workflow(self, workflow_id: int) -> Workflow | None:
        row = await self.workflow_store.get(check_job_id(workflow_id))
        return Workflow.from_row(row) if row is not None else None

    async def wait_workflow(self, workflow_id: int, timeout: float | None = None) -> Workflow:
        """Wait until the workflow succeeded, failed or was cancelled; TimeoutError after
        `timeout`; WorkflowNotFound when no workflow has that id."""
        check_job_id(workflow_id)
        if timeout is not None:
            check_seconds(timeout, "timeout", maximum=MAX_TIMEOUT_SECONDS)
        async with asyncio.timeout(timeout):
            delay = 0.01
            while True:
                found = await self.get_workflow(workflow_id)
                if found is None:
                    raise WorkflowNotFound(workflow_id)
                if found.status in FINAL_WORKFLOW_STATUSES:
                    return found
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 0.25)

    async def workflow_result(self, workflow_id: int, timeout: float | None = None) -> Any:
        """The last step's result (the list of results for a workflow that ends in a
        group), once the workflow succeeded, each decoded by its task's return type as
        `result(job_id)` does. JobFailed naming the first step that failed when it
        failed, JobCancelled when it was cancelled; WorkflowNotFound when no workflow
        has that id (also once retention removed a finished one)."""
        done = await self.wait_workflow(workflow_id, timeout)
        if done.status != "succeeded":
            broken = await self._first_broken_step(done)
            if done.status == "failed" and broken is not None and broken[1] == "failed":
                raise JobFailed(broken[0], broken[2])
            raise JobCancelled(broken[0] if broken is not None else done.job_ids[-1])
        row = await self.workflow_store.get(workflow_id)
        if row is None:  # removed by retention meanwhile
            raise WorkflowNotFound(workflow_id)
        outputs = await self.workflow_store.outputs(workflow_id)
        names: list[str | None] = [*row.output_tasks] if row.output_tasks else [None] * len(outputs)
        values = []
        for name, (_, raw) in zip(names, outputs, strict=False):
            task = self.tasks.get(name) if name is not None else None
            value = decode_json(raw) if raw is not None else None
            values.append(typed_result(task.func if task is not None else None, value))
        return assemble(row.output, values)

    async def _first_broken_step(self, workflow: Workflow) -> tuple[int, str, str | None] | None:
        jobs = await self.job_queue.get_many(workflow.job_ids)
        cancelled = None
        for job_id in workflow.job_ids:
            row = jobs.get(job_id)
            if row is None:
                continue
            if row.status == "failed":
                return (job_id, "failed", row.last_error)
            if row.status == "cancelled" and cancelled is None:
                cancelled = (job_id, "cancelled", row.last_error)
        return cancelled

    async def workflow_tree(self, workflow_id: int) -> WorkflowTree | None:
        """The workflow with its canvas and steps, for display (the CLI's `workflow
        show`): `shape` nests {"chain": [...]}, {"group": [...]} and {"chord": [header,
        body]} around step numbers, indices into `workflow.job_ids` and `steps`."""
        row = await self.workflow_store.get(check_job_id(workflow_id))
        if row is None:
            return None
        found = await self.job_queue.get_many(row.job_ids)
        steps = [Job.from_row(found[i]) if i in found else None for i in row.job_ids]
        return WorkflowTree(workflow=Workflow.from_row(row), shape=row.shape, steps=steps)

    async def cancel_workflow(self, workflow_id: int) -> int:
        """Cancel every step that has not started; running steps are stopped by their
        workers. Returns how many steps it cancelled or asked to stop."""
        return await self.workflow_store.cancel(check_job_id(workflow_id))

    async def retry_workflow(self, workflow_id: int) -> int:
        """Queue failed and cancelled steps again (a step whose parents have not all
        succeeded waits for them again); the workflow runs until it ends anew. Returns
        how many steps it put back."""
        return len(await self.workflow_store.retry(check_job_id(workflow_id)))

    async def _retry_step(self, workflow_id: int, job_id: int) -> bool:
        """retry(job) of a workflow step: the step and the steps cancelled because of it."""
        return bool(await self.workflow_store.retry(workflow_id, root=job_id))


def _fingerprint(compiled: Compiled, calls: list[str]) -> str:
    """Identity of a workflow's definition: its shape and every step's task, call and
    options (the same canvas written again has the same one)."""
    described = [
        [c.step.task.name, calls[i], c.parents, c.input] for i, c in enumerate(compiled.steps)
    ]
    return hashlib.sha256(_canonical.encode([compiled.shape, described])).hexdigest()
