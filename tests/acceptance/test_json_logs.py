"""`taskrunner worker --log-format json`, run for real: every line it writes to stderr is
one JSON object, and the records about a job carry its ids."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from acceptance_helpers import APPS, environment, import_app, mirror, run_cli

from taskrunner import TaskRunner

APP = f"{APPS}.json_logs_app:runner"


@pytest.fixture
async def tr(
    pg_dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TaskRunner]:
    app = import_app("json_logs_app", monkeypatch)
    async with TaskRunner(pg_dsn, schema=schema) as runner:
        mirror(runner, [app.greet, app.traced, app.broken])
        yield runner


async def run_json_worker(pg_dsn: str, schema: str) -> list[dict[str, Any]]:
    proc = await run_cli(
        "worker",
        APP,
        "--stop-when-idle",
        "--poll-interval",
        "0.1",
        "--log-format",
        "json",
        env=environment(pg_dsn, schema),
    )
    assert proc.code == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines, "the worker logged nothing"
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}\n{proc.stderr}") from None
    return records


async def test_every_line_a_json_worker_writes_is_a_json_object_with_the_basic_fields(
    tr: TaskRunner, pg_dsn: str, schema: str
):
    await tr.enqueue("acceptance.greet", "ada")
    await tr.enqueue("acceptance.broken")
    for record in await run_json_worker(pg_dsn, schema):
        assert isinstance(record, dict)
        assert {"time", "level", "logger", "message"} <= record.keys(), record


async def test_records_about_a_job_carry_its_id_task_and_request_id(
    tr: TaskRunner, pg_dsn: str, schema: str
):
    job = await tr.enqueue("acceptance.greet", "ada", request_id="req-json-1")
    records = await run_json_worker(pg_dsn, schema)
    about = [r for r in records if r.get("job_id") == job.id]
    messages = [r["message"] for r in about]
    assert "greeting ada" in messages, records  # the handler's own plain line
    assert any("succeeded" in m for m in messages), records  # the worker's line
    for record in about:
        assert (record["task"], record["request_id"]) == ("acceptance.greet", "req-json-1")


async def test_a_trace_id_on_the_record_is_written(tr: TaskRunner, pg_dsn: str, schema: str):
    await tr.enqueue("acceptance.traced")
    records = await run_json_worker(pg_dsn, schema)
    (traced,) = [r for r in records if r["message"] == "inside a trace"]
    assert traced["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_a_logged_exception_is_written_with_its_traceback(
    tr: TaskRunner, pg_dsn: str, schema: str
):
    job = await tr.enqueue("acceptance.broken")
    records = await run_json_worker(pg_dsn, schema)
    (failed,) = [r for r in records if r["message"] == "lookup failed"]
    assert (failed["level"], failed["job_id"], failed["exc_type"]) == ("ERROR", job.id, "KeyError")
    assert "Traceback" in failed["exception"]
    assert "'missing'" in failed["exception"]


async def test_a_usage_error_of_a_json_worker_is_a_json_line_too(pg_dsn: str):
    proc = await run_cli("worker", "nope:runner", "--log-format", "json", env=environment(pg_dsn))
    assert proc.code == 2
    (record,) = [json.loads(line) for line in proc.stderr.splitlines()]
    assert record["level"] == "ERROR"
    assert "cannot import module 'nope'" in record["message"]


async def test_the_default_log_format_stays_text(tr: TaskRunner, pg_dsn: str, schema: str):
    await tr.enqueue("acceptance.greet", "ada")
    proc = await run_cli(
        "worker",
        APP,
        "--stop-when-idle",
        "--poll-interval",
        "0.1",
        env=environment(pg_dsn, schema),
    )
    assert proc.code == 0, proc.stderr
    assert "greeting ada" in proc.stderr
    assert not proc.stderr.lstrip().startswith("{")
