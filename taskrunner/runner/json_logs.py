"""One JSON object per log record, for log collectors (`taskrunner worker --log-format json`).

A small stdlib Formatter rather than python-json-logger: the core package stays at its few
dependencies, and the one thing a library would add, renaming fields, is not needed here.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from taskrunner.runner.context import current_job, current_request_id

# The attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)
_CORRELATION = ("job_id", "task", "request_id", "trace_id", "span_id")


def _otel_ids() -> tuple[str, str] | None:
    """The current OpenTelemetry span's trace and span ids, read only when the application
    has imported OpenTelemetry itself: logging never pulls it in."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    try:
        context = trace.get_current_span().get_span_context()
    except Exception:  # a broken tracer must not lose the log line
        return None
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON: `time` (ISO 8601, UTC), `level`, `logger`,
    `message`; `job_id`, `task`, `request_id`, `trace_id` and `span_id` when known;
    `exception` and `stack` when the record has them; then the record's other `extra=`
    attributes.

    The job ids come from the record (taskrunner's own records carry them) or else from the
    running job, so a handler's plain `log.info(...)` is correlated too; the trace id from
    the record's `trace_id` or else the current OpenTelemetry span."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        attributes = record.__dict__
        job = current_job()
        fallback: dict[str, Any] = {}
        if job is not None:
            fallback = {"job_id": job.job_id, "task": job.task}
        request_id = current_request_id()
        if request_id is not None:
            fallback["request_id"] = request_id
        if "trace_id" not in attributes and (ids := _otel_ids()) is not None:
            fallback["trace_id"], fallback["span_id"] = ids
        for name in _CORRELATION:
            value = attributes.get(name, fallback.get(name))
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
            if record.exc_info[0] is not None:
                entry["exc_type"] = record.exc_info[0].__name__
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for name, value in attributes.items():
            if name not in _STANDARD and name not in entry and not name.startswith("_"):
                entry[name] = value
        try:
            return json.dumps(entry, default=str)
        except (TypeError, ValueError):  # a circular or otherwise unencodable extra
            return json.dumps({k: v if k in _SAFE else repr(v) for k, v in entry.items()})


_SAFE = frozenset({"time", "level", "logger", "message", "exception", "exc_type", "stack"})
