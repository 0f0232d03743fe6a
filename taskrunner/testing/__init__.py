"""Helpers for testing code that uses taskrunner, against a real PostgreSQL.

- `fresh_schema(runner)`: the application's own runner, opened on a new schema of the
  test database, dropped afterwards.
- `run_until_idle(runner)`: a worker until nothing is runnable; the jobs it ran.
- `assert_enqueued` / `assert_not_enqueued` / `enqueued_jobs`: what was enqueued.

The pytest plugin (`taskrunner.testing.plugin`, registered as an entry point, so it is
active wherever taskrunner is installed) turns these into fixtures: `fresh_runner`,
`taskrunner_app`, `taskrunner_dsn`.
"""

from taskrunner.testing.assertions import assert_enqueued, assert_not_enqueued, enqueued_jobs
from taskrunner.testing.schema import fresh_schema
from taskrunner.testing.worker import run_until_idle

__all__ = [
    "assert_enqueued",
    "assert_not_enqueued",
    "enqueued_jobs",
    "fresh_schema",
    "run_until_idle",
]
