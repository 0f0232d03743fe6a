"""One OpenTelemetry SDK for the test process, whose spans tests read from memory.

OpenTelemetry takes one global tracer provider per process: it is set once, here, and
each test starts from an empty exporter."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter = InMemorySpanExporter()
_provider: TracerProvider | None = None


def span_exporter() -> InMemorySpanExporter:
    """The process's exporter, emptied."""
    global _provider
    if _provider is None:
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            _provider = current
        else:
            _provider = TracerProvider()
            trace.set_tracer_provider(_provider)
        _provider.add_span_processor(SimpleSpanProcessor(_exporter))
    _exporter.clear()
    return _exporter


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]
