"""taskrunner.JsonFormatter, for applications that configure logging themselves: one JSON
object per record, correlated with the running job and the current trace."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from typing import Any

import pytest

from taskrunner import JobContext, JsonFormatter, request_context
from taskrunner.runner.context import running_job


def record(message: str = "hello %s", *args: object, **extra: Any) -> logging.LogRecord:
    made = logging.LogRecord("app.orders", logging.WARNING, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


def formatted(made: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(made)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_a_record_becomes_one_json_line_with_time_level_logger_and_message():
    entry = formatted(record("hello %s", "ada"))
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "WARNING",
        "app.orders",
        "hello ada",
    )
    assert entry["time"].endswith("+00:00")


def test_ids_given_on_the_record_are_written():
    entry = formatted(record(job_id=7, task="emails.send", request_id="req-1", trace_id="ab" * 16))
    assert (entry["job_id"], entry["task"], entry["request_id"], entry["trace_id"]) == (
        7,
        "emails.send",
        "req-1",
        "ab" * 16,
    )


def test_a_record_without_ids_takes_them_from_the_running_job():
    job = JobContext(job_id=9, task="t", queue="q", attempt=1, max_attempts=3, request_id="r-9")
    with running_job(job):
        entry = formatted(record())
    assert (entry["job_id"], entry["task"], entry["request_id"]) == (9, "t", "r-9")


def test_a_record_inside_a_request_context_carries_its_request_id():
    with request_context("req-web-3"):
        entry = formatted(record())
    assert entry["request_id"] == "req-web-3"
    assert "job_id" not in entry


def test_ids_that_are_not_known_are_left_out():
    entry = formatted(record())
    assert not {"job_id", "task", "request_id", "trace_id", "exception"} & entry.keys()


def test_other_extra_attributes_are_written_and_unencodable_ones_as_text():
    entry = formatted(record(order=12, amount=object()))
    assert entry["order"] == 12
    assert entry["amount"].startswith("<object object")


def test_a_circular_extra_does_not_lose_the_line():
    loop: list[object] = []
    loop.append(loop)
    entry = formatted(record("kept", looping=loop))
    assert entry["message"] == "kept"


def test_an_exception_is_written_with_its_type_and_traceback():
    try:
        raise ValueError("bad amount")
    except ValueError:
        made = logging.LogRecord("app", logging.ERROR, __file__, 1, "oops", None, sys.exc_info())
    entry = formatted(made)
    assert entry["exc_type"] == "ValueError"
    assert "Traceback" in entry["exception"]
    assert "bad amount" in entry["exception"]


def test_the_trace_id_comes_from_the_current_opentelemetry_span():
    trace = pytest.importorskip("opentelemetry.trace")
    context = trace.SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=False)
    with trace.use_span(trace.NonRecordingSpan(context)):
        entry = formatted(record())
    assert (entry["trace_id"], entry["span_id"]) == (f"{0xABC:032x}", f"{0xDEF:016x}")


def test_a_trace_id_on_the_record_wins_over_the_current_span():
    trace = pytest.importorskip("opentelemetry.trace")
    context = trace.SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=False)
    with trace.use_span(trace.NonRecordingSpan(context)):
        entry = formatted(record(trace_id="given"))
    assert entry["trace_id"] == "given"


def test_formatting_never_imports_opentelemetry():
    code = (
        "import logging, sys, taskrunner\n"
        "r = logging.LogRecord('a', 20, 'f', 1, 'm', None, None)\n"
        "taskrunner.JsonFormatter().format(r)\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
