"""OpenTelemetry tracing of enqueues and attempts: `TaskRunner(tracing=True)`.

Imported only when tracing is on (runner/instruments.py). Spans go through the
OpenTelemetry API to whatever SDK the application set up; without one they cost little
and record nothing. Each enqueue call is a PRODUCER span `send <queue>` whose W3C
context (traceparent, tracestate, baggage: the global propagator's fields) is stored on
its jobs; each attempt is a CONSUMER span `process <queue>` whose parent is that stored
context, so every attempt of a job, on any worker and however late, joins the trace of
the request that queued it. A job enqueued inside a handler is the attempt's child: the
attempt's span is the current one while the handler runs (in a process handler's child
too, see `attached`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import msgspec
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from taskrunner.queue import EnqueueResult, JobRow, NewJob
from taskrunner.runner.context import JobContext

if TYPE_CHECKING:
    from taskrunner.runner.instruments import Run, Write
    from taskrunner.runner.tasks import Task

log = logging.getLogger("taskrunner")

SYSTEM = "taskrunner"
_encode = msgspec.json.encode
_decode = msgspec.json.Decoder(dict[str, str]).decode


class Tracing:
    """The tracing instrument of one runner."""

    def __init__(self) -> None:
        from taskrunner import __version__

        self.tracer = trace.get_tracer("taskrunner", __version__)

    @staticmethod
    def carrier() -> dict[str, str]:
        """The current span's context, for a process handler's child (see `attached`)."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return carrier

    async def send(self, jobs: list[NewJob], write: Write) -> list[EnqueueResult]:
        first = jobs[0]
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.destination.name": first.queue,
            "taskrunner.task": first.task,
        }
        if first.request_id is not None:
            attributes["taskrunner.request_id"] = first.request_id
        if len(jobs) > 1:
            attributes["messaging.batch.message_count"] = len(jobs)
        outer = otel_context.get_current()
        span = self.tracer.start_span(
            f"send {first.queue}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        token = otel_context.attach(trace.set_span_in_context(span, outer))
        try:
            carrier: dict[str, str] = {}
            # Without an SDK here the span is a no-op one: pass on the caller's context
            # (in a process handler's child, the attempt's).
            propagate.inject(carrier, None if span.get_span_context().is_valid else outer)
            if carrier:
                stamp = _encode(carrier)
                replace = msgspec.structs.replace
                jobs = [replace(job, trace_context=stamp) for job in jobs]
            results = await write(jobs)
            if len(results) == 1:
                span.set_attribute("messaging.message.id", str(results[0].job.id))
            return results
        except Exception as exc:
            _failed(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()

    async def attempt(self, run: Run, task: Task[..., Any], job: JobRow, ctx: JobContext) -> bytes:
        parent = _parent_of(job) if job.trace_context is not None else None
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.destination.name": job.queue,
            "messaging.message.id": str(job.id),
            "taskrunner.task": job.task,
            "taskrunner.attempt": job.attempts,
        }
        if job.request_id is not None:
            attributes["taskrunner.request_id"] = job.request_id
        span = self.tracer.start_span(
            f"process {job.queue}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        )
        # The stored context, not the worker's, is the handler's: its baggage too.
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            return await run(task, job, ctx)
        except Exception as exc:
            _failed(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()


def _parent_of(job: JobRow) -> otel_context.Context | None:
    """The context stored by the job's enqueue; None (a new trace) for one that cannot
    be read, such as one written by hand in SQL: tracing never fails an attempt."""
    assert job.trace_context is not None
    try:
        carrier = _decode(job.trace_context)
        if len(carrier) == 1 and _default_propagator():
            parent = _traceparent_only(carrier)
            if parent is not None:
                return parent
        return propagate.extract(carrier)
    except Exception as exc:
        log.warning(
            "job %s: its stored trace context cannot be read (%s); traced as a new trace",
            job.id,
            exc,
        )
        return None


_ROOT = otel_context.Context()
# What the W3C propagator accepts of a version-00 traceparent, less its corner cases
# (those, and every other carrier, take the propagator's own way).
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_NO_TRACE = "0" * 32
_NO_SPAN = "0" * 16
_checked: list[tuple[TextMapPropagator, bool]] = []


def _traceparent_only(carrier: dict[str, str]) -> otel_context.Context | None:
    """What `propagate.extract` makes of the usual stored context, a lone version-00
    traceparent, under the default propagator (W3C trace context, then baggage, which
    has none to add), in a fifth of its time; None for anything else."""
    header = carrier.get("traceparent")
    match = _TRACEPARENT.fullmatch(header) if header is not None else None
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == _NO_TRACE or span_id == _NO_SPAN:
        return None
    remote = SpanContext(
        int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(int(flags, 16))
    )
    return trace.set_span_in_context(NonRecordingSpan(remote), _ROOT)


def _default_propagator() -> bool:
    """Whether the global propagator is still OpenTelemetry's default (`tracecontext,
    baggage`), for which `_traceparent_only` is exact; checked once per propagator set."""
    textmap = propagate.get_global_textmap()
    if not _checked or _checked[0][0] is not textmap:
        parts = (
            getattr(textmap, "_propagators", None) if type(textmap) is CompositePropagator else None
        )
        default = parts is not None and [type(p) for p in parts] == [
            TraceContextTextMapPropagator,
            W3CBaggagePropagator,
        ]
        _checked[:] = [(textmap, default)]
    return _checked[0][1]


def _failed(span: trace.Span, exc: Exception) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


@contextmanager
def attached(carrier: Mapping[str, str]) -> Iterator[None]:
    """In a process handler's child: the attempt's span (in the parent) is the current
    span's parent here, so that what the handler traces, and the jobs it enqueues, are
    the attempt's children."""
    token = otel_context.attach(propagate.extract(carrier))
    try:
        yield
    finally:
        otel_context.detach(token)
