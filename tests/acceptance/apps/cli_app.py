"""An app for the command-line acceptance tests (schema from $TR_TEST_SCHEMA)."""

from __future__ import annotations

import os

from taskrunner import TaskRunner

runner = TaskRunner(schema=os.environ.get("TR_TEST_SCHEMA", "taskrunner"))

not_a_runner = "just a string"


@runner.task(name="acceptance.echo")
async def echo(value: int) -> int:
    return value
