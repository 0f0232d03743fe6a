"""The pytest plugin (entry point `taskrunner` in the `pytest11` group).

Fixtures:

- `taskrunner_app`: the application's TaskRunner, the one its tasks are declared on.
  Named by the ini option `taskrunner_app = "myapp.tasks:runner"`, or given by a fixture
  of that name in the application's conftest.py.
- `taskrunner_dsn` (session): the test database; the first that is set of
  `--taskrunner-dsn`, the ini option `taskrunner_dsn`, $TASKRUNNER_TEST_DSN; else None,
  which leaves the runner's own resolution ($TASKRUNNER_DSN, $DATABASE_URL, embedded).
- `fresh_runner`: `taskrunner_app` opened on a new schema of that database, dropped
  after the test (`taskrunner.testing.fresh_schema`).

The async fixture needs pytest-asyncio (`pip install 'taskrunner[testing]'`); without it
the plugin still loads, and `fresh_runner` says what is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from taskrunner import TaskRunner

DSN_VARIABLE = "TASKRUNNER_TEST_DSN"
APP_OPTION = "taskrunner_app"
DSN_OPTION = "taskrunner_dsn"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("taskrunner")
    group.addoption(
        "--taskrunner-dsn",
        dest=DSN_OPTION,
        default=None,
        help=f"PostgreSQL DSN of the test database (default: ini {DSN_OPTION}, "
        f"${DSN_VARIABLE}, then the runner's own: $TASKRUNNER_DSN, $DATABASE_URL, embedded)",
    )
    parser.addini(DSN_OPTION, "PostgreSQL DSN of the test database for taskrunner's fixtures")
    parser.addini(APP_OPTION, 'the TaskRunner your tasks are declared on, as "module:attribute"')


def resolve_test_dsn(config: pytest.Config) -> str | None:
    """The test database's DSN, as the `taskrunner_dsn` fixture resolves it."""
    given = (
        config.getoption(DSN_OPTION) or config.getini(DSN_OPTION) or os.environ.get(DSN_VARIABLE)
    )
    return str(given) if given else None


def load_app(spec: str) -> TaskRunner:
    """The TaskRunner named by "module:attribute" (dots in the attribute go deeper)."""
    from taskrunner import TaskRunner

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise pytest.UsageError(
            f'{APP_OPTION} must be "module:attribute" (such as "myapp.tasks:runner"), not {spec!r}'
        )
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise pytest.UsageError(f"{APP_OPTION}: {module_name} has no {attribute!r}")
    if not isinstance(found, TaskRunner):
        raise pytest.UsageError(
            f"{APP_OPTION}: {spec} is a {type(found).__name__}, not a TaskRunner"
        )
    return found


@pytest.fixture(scope="session")
def taskrunner_dsn(pytestconfig: pytest.Config) -> str | None:
    """The DSN of the test database (None: the runner's own resolution)."""
    return resolve_test_dsn(pytestconfig)


@pytest.fixture
def taskrunner_app(pytestconfig: pytest.Config) -> TaskRunner:
    """The application's runner, from the ini option `taskrunner_app`; override this
    fixture in conftest.py to give it directly."""
    spec = pytestconfig.getini(APP_OPTION)
    if not spec:
        raise pytest.UsageError(
            f'taskrunner: set `{APP_OPTION} = "myapp.tasks:runner"` in your pytest '
            f"configuration, or define a fixture named {APP_OPTION} that returns the "
            "TaskRunner your tasks are declared on"
        )
    return load_app(str(spec))


if importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    @pytest_asyncio.fixture(name="fresh_runner")
    async def _fresh_runner(
        taskrunner_app: TaskRunner, taskrunner_dsn: str | None
    ) -> AsyncIterator[TaskRunner]:
        """The application's runner, open on a new schema of the test database; the
        schema is dropped after the test."""
        from taskrunner.testing.schema import fresh_schema

        async with fresh_schema(taskrunner_app, dsn=taskrunner_dsn) as runner:
            yield runner

else:

    @pytest.fixture(name="fresh_runner")
    def _fresh_runner_unavailable() -> None:
        pytest.fail(
            "taskrunner's fresh_runner fixture needs pytest-asyncio: "
            "pip install 'taskrunner[testing]'",
            pytrace=False,
        )
