"""An app whose runner has no tasks (schema from $TR_TEST_SCHEMA)."""

from __future__ import annotations

import os

from taskrunner import TaskRunner

runner = TaskRunner(schema=os.environ.get("TR_TEST_SCHEMA", "taskrunner"))
