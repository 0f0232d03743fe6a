"""TaskRunner(tracing=True): a PRODUCER span per enqueue, whose context the job keeps,
and a CONSUMER span per attempt under it, in every executor."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import traced_tasks
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tracing_helpers import named, span_exporter
from worker_helpers import background_worker

from taskrunner import TaskRunner, current_job

WORKER = {"stop_when_idle": True, "poll_interval": 0.05, "handle_signals": False}


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return span_exporter()


@pytest.fixture
async def traced(pg_dsn: str, bare_schema: str) -> AsyncIterator[TaskRunner]:
    async with TaskRunner(pg_dsn, schema=bare_schema, tracing=True) as opened:
        yield opened


async def stored_context(runner: TaskRunner, job_id: int) -> dict[str, str] | None:
    value = await runner.job_queue.db.fetchval(
        f'SELECT trace_context::text FROM "{runner.schema}".jobs WHERE id = $1', job_id
    )
    return json.loads(value) if value is not None else None


async def test_an_enqueue_is_a_producer_span_whose_context_the_job_keeps(
    traced: TaskRunner, spans: InMemorySpanExporter
):
    @traced.task(queue="emails")
    async def send_mail() -> None:
        pass

    job = await send_mail.enqueue()

    (span,) = named(spans.get_finished_spans(), "send emails")
    assert span.kind is SpanKind.PRODUCER
    assert span.attributes is not None
    assert span.attributes["messaging.system"] == "taskrunner"
    assert span.attributes["messaging.destination.name"] == "emails"
    assert span.attributes["messaging.message.id"] == str(job.id)
    assert span.attributes["taskrunner.task"] == send_mail.name
    assert span.attributes["taskrunner.request_id"] == job.request_id
    stored = await stored_context(traced, job.id)
    assert stored is not None
    assert stored["traceparent"].startswith(
        f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-"
    )


async def test_enqueue_many_is_one_producer_span_for_the_batch(
    traced: TaskRunner, spans: InMemorySpanExporter
):
    @traced.task
    async def noop(n: int) -> None:
        pass

    jobs = await traced.enqueue_many(noop, [1, 2, 3])

    (span,) = named(spans.get_finished_spans(), "send default")
    assert span.attributes is not None
    assert span.attributes["messaging.batch.message_count"] == 3
    contexts = [await stored_context(traced, j.id) for j in jobs]
    assert all(
        c is not None and f"{span.context.span_id:016x}" in c["traceparent"] for c in contexts
    )


async def test_the_enqueue_span_is_a_child_of_the_callers_span_and_baggage_travels(
    traced: TaskRunner, spans: InMemorySpanExporter
):
    @traced.task
    async def noop() -> None:
        pass

    tracer = trace.get_tracer("test")
    token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with tracer.start_as_current_span("request") as request:
            job = await noop.enqueue()
    finally:
        otel_context.detach(token)

    (send,) = named(spans.get_finished_spans(), "send default")
    assert send.parent is not None
    assert send.parent.span_id == request.get_span_context().span_id
    stored = await stored_context(traced, job.id)
    assert stored is not None
    assert stored["baggage"] == "tenant=acme"


async def test_the_baggage_stored_with_a_job_is_the_handlers_baggage(traced: TaskRunner):
    seen: list[object] = []

    @traced.task
    async def noop() -> None:
        seen.append(baggage.get_baggage("tenant"))

    token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        await noop.enqueue()
    finally:
        otel_context.detach(token)
    await traced.run_worker(**WORKER)  # type: ignore[arg-type]

    assert seen == ["acme"]


async def test_a_stored_tracestate_is_kept_by_the_attempts_span(
    traced: TaskRunner, spans: InMemorySpanExporter
):
    @traced.task
    async def noop() -> None:
        pass

    job = await noop.enqueue()
    stored = await stored_context(traced, job.id)
    assert stored is not None
    await traced.job_queue.db.execute(
        f'UPDATE "{traced.schema}".jobs SET trace_context = $1::text::jsonb',
        json.dumps(stored | {"tracestate": "vendor=on"}),
    )
    await traced.run_worker(**WORKER)  # type: ignore[arg-type]

    (send,) = named(spans.get_finished_spans(), "send default")
    (attempt,) = named(spans.get_finished_spans(), "process default")
    assert attempt.parent is not None
    assert attempt.parent.span_id == send.context.span_id
    assert attempt.context.trace_state.get("vendor") == "on"


async def test_each_attempt_is_a_consumer_span_under_the_enqueue_span(
    traced: TaskRunner, spans: InMemorySpanExporter
):
    @traced.task(queue="q1")
    async def work() -> str:
        ctx = current_job()
        assert ctx is not None
        return "done"

    job = await work.enqueue()
    await traced.run_worker(**WORKER)  # type: ignore[arg-type]

    finished = spans.get_finished_spans()
    (send,) = named(finished, "send q1")
    (process,) = named(finished, "process q1")
    assert process.kind is SpanKind.CONSUMER
    assert process.parent is not None
    assert process.parent.span_id == send.context.span_id
    assert process.context.trace_id == send.context.trace_id
    assert process.attributes == {
        "messaging.system": "taskrunner",
        "messaging.operation.type": "process",
        "messaging.destination.name": "q1",
        "messaging.message.id": str(job.id),
        "taskrunner.task": work.name,
        "taskrunner.attempt": 1,
        "taskrunner.request_id": job.request_id,
    }
    assert process.status.status_code is StatusCode.UNSET


async def test_a_failed_attempt_is_an_error_span_with_the_exception_and_a_retry_has_the_same_parent(
    traced: TaskRunner, spans: InMemorySpanExporter
):
    import tenacity

    from taskrunner import Retry

    calls = []

    @traced.task(retry=Retry(max_attempts=2, wait=tenacity.wait_none()))
    async def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("boom")

    await flaky.enqueue()
    await traced.run_worker(**WORKER)  # type: ignore[arg-type]

    finished = spans.get_finished_spans()
    (send,) = named(finished, "send default")
    first, second = sorted(
        named(finished, "process default"),
        key=lambda s: s.attributes["taskrunner.attempt"],  # type: ignore[index]
    )
    assert first.status.status_code is StatusCode.ERROR
    assert "boom" in (first.status.description or "")
    assert [e.name for e in first.events] == ["exception"]
    assert first.events[0].attributes["exception.type"] == "ValueError"  # type: ignore[index]
    assert second.attributes["taskrunner.attempt"] == 2  # type: ignore[index]
    assert second.status.status_code is StatusCode.UNSET
    assert first.parent.span_id == second.parent.span_id == send.context.span_id  # type: ignore[union-attr]


async def test_a_rescued_job_is_processed_under_its_enqueue_span(
    traced: TaskRunner, spans: InMemorySpanExporter
):
    @traced.task
    async def noop() -> None:
        pass

    job = await noop.enqueue()
    # A worker that died holding it: its lease runs out and a live worker's rescue
    # gives the job back.
    await traced.job_queue.claim([noop.name], limit=1, owner="dead", lease={noop.name: 0.01})
    async with background_worker(traced, rescue_interval=0.05):
        await traced.wait(job.id, timeout=20)

    finished = spans.get_finished_spans()
    (send,) = named(finished, "send default")
    (attempt,) = named(finished, "process default")
    assert attempt.attributes["taskrunner.attempt"] == 2  # type: ignore[index]
    assert attempt.parent is not None
    assert attempt.parent.span_id == send.context.span_id


async def test_a_job_of_a_limited_queue_is_processed_under_its_enqueue_span(
    traced: TaskRunner, spans: InMemorySpanExporter
):
    await traced.configure_queue("serial", concurrency=1)

    @traced.task(queue="serial")
    async def noop() -> None:
        pass

    await noop.enqueue()
    await traced.run_worker(**WORKER)  # type: ignore[arg-type]

    finished = spans.get_finished_spans()
    (send,) = named(finished, "send serial")
    (attempt,) = named(finished, "process serial")
    assert attempt.parent is not None
    assert attempt.parent.span_id == send.context.span_id


async def test_a_stored_context_that_cannot_be_read_starts_a_new_trace_and_the_job_runs(
    traced: TaskRunner, spans: InMemorySpanExporter
):
    @traced.task
    async def noop() -> str:
        return "ran"

    job = await noop.enqueue()
    await traced.job_queue.db.execute(
        f'UPDATE "{traced.schema}".jobs SET trace_context = \'{{"traceparent": 5}}\'',
    )
    await traced.run_worker(**WORKER)  # type: ignore[arg-type]

    assert (await traced.result(job.id)) == "ran"
    (attempt,) = named(spans.get_finished_spans(), "process default")
    assert attempt.parent is None


@pytest.mark.parametrize("executor", ["async", "thread"])
async def test_a_job_enqueued_inside_a_handler_is_the_attempts_child(
    traced: TaskRunner, spans: InMemorySpanExporter, executor: str
):
    @traced.task(queue="leaf")
    async def leaf() -> None:
        pass

    if executor == "async":

        @traced.task(queue="parent", name="parent")
        async def parent() -> None:
            await leaf.enqueue()

    else:

        @traced.task(queue="parent", name="parent", executor="thread")
        def parent() -> None:
            traced.sync.enqueue(leaf)

    await traced.enqueue("parent")
    try:
        await traced.run_worker(**WORKER)  # type: ignore[arg-type]
    finally:
        traced.sync.close()

    finished = spans.get_finished_spans()
    (attempt,) = named(finished, "process parent")
    (send_leaf,) = named(finished, "send leaf")
    (leaf_attempt,) = named(finished, "process leaf")
    assert send_leaf.parent is not None
    assert send_leaf.parent.span_id == attempt.context.span_id
    assert leaf_attempt.parent is not None
    assert leaf_attempt.parent.span_id == send_leaf.context.span_id
    assert leaf_attempt.context.trace_id == attempt.context.trace_id


async def test_a_process_handler_sees_the_attempts_span_context(
    traced: TaskRunner, spans: InMemorySpanExporter, pg_dsn: str
):
    """The child runs without the parent's SDK: what it enqueues carries the attempt's
    context, so the new job's attempt is traced under the process attempt."""
    traced.task(executor="process")(traced_tasks.enqueue_from_process.func)

    @traced.task(name="leaf")
    async def leaf() -> None:
        pass

    await traced.enqueue(traced_tasks.enqueue_from_process.name, pg_dsn, traced.schema, "leaf")
    await traced.run_worker(**WORKER)  # type: ignore[arg-type]

    by_task = {
        s.attributes["taskrunner.task"]: s  # type: ignore[index]
        for s in named(spans.get_finished_spans(), "process default")
    }
    attempt = by_task[traced_tasks.enqueue_from_process.name]
    assert attempt.status.status_code is StatusCode.UNSET
    leaf_attempt = by_task["leaf"]  # queued by name, so in the default queue
    assert leaf_attempt.parent is not None
    assert leaf_attempt.parent.span_id == attempt.context.span_id
    assert leaf_attempt.context.trace_id == attempt.context.trace_id


async def test_a_job_enqueued_without_tracing_is_processed_in_a_new_trace(
    traced: TaskRunner, spans: InMemorySpanExporter, pg_dsn: str
):
    async with TaskRunner(pg_dsn, schema=traced.schema) as plain:

        @plain.task(name="t")
        async def t() -> None:
            pass

        job = await plain.enqueue("t")

    traced.task(name="t")(t.func)
    await traced.run_worker(**WORKER)  # type: ignore[arg-type]

    assert await stored_context(traced, job.id) is None
    (attempt,) = named(spans.get_finished_spans(), "process default")
    assert attempt.parent is None


NO_INSTRUMENTS = """
import asyncio, sys
from taskrunner import TaskRunner

runner = TaskRunner(sys.argv[1], schema=sys.argv[2])

@runner.task
def double(n: int) -> int:
    return 2 * n

async def main() -> None:
    async with runner:
        await runner.enqueue_many(double, [1, 2])
        await double.enqueue(3)
        await runner.run_worker(stop_when_idle=True, poll_interval=0.05, handle_signals=False)
        assert (await runner.stats())

asyncio.run(main())
print(sorted(m for m in sys.modules if m.startswith(("opentelemetry", "prometheus_client",
      "taskrunner.runner.tracing", "taskrunner.runner.metrics"))))
"""


def test_without_tracing_and_metrics_neither_is_imported_by_enqueues_nor_a_worker(
    pg_dsn: str, bare_schema: str
):
    out = subprocess.run(
        [sys.executable, "-c", NO_INSTRUMENTS, pg_dsn, bare_schema],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


MISSING_EXTRAS = """
import asyncio, sys
sys.modules["opentelemetry"] = None  # as if the extras were not installed
sys.modules["prometheus_client"] = None
from taskrunner import TaskRunner, TaskRunnerError

try:
    TaskRunner("postgresql://x/y", tracing=True)
except TaskRunnerError as exc:
    print("tracing:", exc)
try:
    asyncio.run(TaskRunner("postgresql://x/y").run_worker(metrics_port=9464))
except TaskRunnerError as exc:
    print("metrics:", exc)
"""


def test_without_the_extras_tracing_and_metrics_are_refused_saying_what_to_install():
    out = subprocess.run(
        [sys.executable, "-c", MISSING_EXTRAS], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "tracing: " in out.stdout
    assert "pip install 'taskrunner[otel]'" in out.stdout
    assert "pip install 'taskrunner[prometheus]'" in out.stdout
