"""Tracing and metrics: OpenTelemetry spans from the enqueue to every attempt, and a
worker's Prometheus metrics.

    pip install 'taskrunner[otel,prometheus]' opentelemetry-sdk
    python examples/tracing.py

The application sets up the OpenTelemetry SDK (here one that keeps the spans, to print
them as a tree; in production an OTLP exporter behind a BatchSpanProcessor); `tracing=True` makes
taskrunner trace through it. A job enqueued inside a handler joins the same trace.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from taskrunner import TaskRunner


class KeepSpans(SpanExporter):
    """Keeps finished spans, to print them as a tree at the end."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def print_tree(self) -> None:
        children: dict[int | None, list[ReadableSpan]] = {}
        for span in sorted(self.spans, key=lambda s: s.start_time or 0):
            children.setdefault(span.parent.span_id if span.parent else None, []).append(span)

        def show(parent: int | None, depth: int) -> None:
            for span in children.get(parent, []):
                assert span.context is not None
                task = (span.attributes or {}).get("taskrunner.task", "")
                print(f"{'  ' * depth}{span.name} ({span.kind.name}) {task}")
                show(span.context.span_id, depth + 1)

        show(None, 0)


provider = TracerProvider()
spans = KeepSpans()
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("shop")

runner = TaskRunner(schema="taskrunner_tracing_example", tracing=True)


@runner.task(queue="emails")
async def send_receipt(order: int) -> str:
    return f"receipt {order} sent"


@runner.task(queue="orders")
async def place_order(order: int) -> None:
    await send_receipt.enqueue(order)  # a child of this attempt's span


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text: str = reply.read().decode()
        return text


async def main() -> None:
    async with runner:
        await runner.job_queue.clear()
        with tracer.start_as_current_span("POST /orders"):
            await place_order.enqueue(7)
        port = free_port()
        worker = asyncio.create_task(
            runner.run_worker(metrics_port=port, handle_signals=False, poll_interval=0.1)
        )
        for _ in range(200):  # until both jobs are done (at most 10 s)
            if (await runner.stats()).totals.get("succeeded", 0) == 2:
                break
            await asyncio.sleep(0.05)
        # Off the event loop: the worker answers the scrape from it (the queue counts).
        metrics = await asyncio.to_thread(scrape, port)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    spans.print_tree()
    for line in metrics.splitlines():
        if line.startswith(("taskrunner_jobs_finished_total", "taskrunner_queue_jobs")):
            print(line)


if __name__ == "__main__":
    asyncio.run(main())
