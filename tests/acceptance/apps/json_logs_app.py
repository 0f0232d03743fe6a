"""An app for the JSON log test: its handlers log plain lines, a line with a trace id, and
an exception (schema from $TR_TEST_SCHEMA)."""

from __future__ import annotations

import logging
import os

from taskrunner import PermanentFailure, TaskRunner

runner = TaskRunner(schema=os.environ.get("TR_TEST_SCHEMA", "taskrunner"))
log = logging.getLogger("json_logs_app")


@runner.task(name="acceptance.greet")
async def greet(name: str) -> str:
    log.info("greeting %s", name)
    return f"hello {name}"


@runner.task(name="acceptance.traced")
async def traced() -> None:
    log.info("inside a trace", extra={"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})


@runner.task(name="acceptance.broken")
async def broken() -> None:
    try:
        {}["missing"]
    except KeyError:
        log.exception("lookup failed")
        raise PermanentFailure("no such key") from None
