"""Fixtures for the runner's tests: an open TaskRunner over a schema of the test's own.

Tasks are registered by each test on the `runner` it gets. Helpers are fixtures too
(`work`, `count_jobs`, `run_until_idle`, `count_rows`, `second_schema`), so test modules
never import this file.

Test modules elsewhere do `from conftest import drop_schema, new_schema_name`, meaning
tests/conftest.py. Once this file is loaded it is the module named `conftest`, so when
tests/runner is collected before them those names must resolve here too: they delegate
to tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType

import pytest

from taskrunner import TaskRunner

ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
_root_conftest: ModuleType | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Find the loaded tests/conftest.py, so its schema bookkeeping is shared."""
    global _root_conftest
    for plugin in config.pluginmanager.get_plugins():
        path = getattr(plugin, "__file__", None)
        if isinstance(plugin, ModuleType) and path and Path(path).resolve() == ROOT_CONFTEST:
            _root_conftest = plugin


def _root() -> ModuleType:
    global _root_conftest
    if _root_conftest is None:  # not loaded as a plugin: load a copy of it
        spec = importlib.util.spec_from_file_location("_tests_root_conftest", ROOT_CONFTEST)
        assert spec is not None
        assert spec.loader is not None
        _root_conftest = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_root_conftest)
    return _root_conftest


def new_schema_name() -> str:
    """tests/conftest.py's: a fresh schema name, checked for leaks at the session's end."""
    name: str = _root().new_schema_name()
    return name


async def drop_schema(dsn: str, schema: str) -> None:
    """tests/conftest.py's."""
    await _root().drop_schema(dsn, schema)


def need_binary(name: str, why: str) -> str:
    """tests/conftest.py's."""
    path: str = _root().need_binary(name, why)
    return path


WORKER_TIMEOUT = 30.0


async def _run_until_idle(runner: TaskRunner, concurrency: int = 4) -> None:
    """Run a worker of `runner` until nothing is running or runnable now."""
    await asyncio.wait_for(
        runner.run_worker(
            concurrency=concurrency,
            stop_when_idle=True,
            poll_interval=0.05,
            handle_signals=False,
        ),
        WORKER_TIMEOUT,
    )


@pytest.fixture
async def runner(pg_dsn: str, bare_schema: str) -> AsyncIterator[TaskRunner]:
    """An open runner (migrated on open) over an unmigrated schema of this test's own."""
    async with TaskRunner(pg_dsn, schema=bare_schema) as opened:
        yield opened


@pytest.fixture
async def second_schema(pg_dsn: str) -> AsyncIterator[str]:
    """Another unmigrated schema name of this test's own, dropped afterwards."""
    schema = new_schema_name()
    yield schema
    await drop_schema(pg_dsn, schema)


async def _count_rows(runner: TaskRunner) -> int:
    total: int = await runner.job_queue.db.fetchval(f'SELECT count(*) FROM "{runner.schema}".jobs')
    return total


@pytest.fixture
def run_until_idle() -> Callable[..., Awaitable[None]]:
    """`await run_until_idle(some_runner)`: a worker of that open runner, until idle."""
    return _run_until_idle


@pytest.fixture
def count_rows() -> Callable[[TaskRunner], Awaitable[int]]:
    """`await count_rows(some_runner)`: every row of its jobs table, in any status."""
    return _count_rows


@pytest.fixture
def work(runner: TaskRunner) -> Callable[..., Awaitable[None]]:
    """`await work()` runs a worker of `runner` until idle (`work(concurrency=1)`)."""

    async def run(concurrency: int = 4) -> None:
        await _run_until_idle(runner, concurrency)

    return run


@pytest.fixture
def count_jobs(runner: TaskRunner) -> Callable[[], Awaitable[int]]:
    """`await count_jobs()` counts every row of the runner's jobs table, in any status."""

    async def count() -> int:
        return await _count_rows(runner)

    return count


@pytest.fixture
async def tr(pg_dsn: str, schema: str) -> AsyncIterator[TaskRunner]:
    """An open runner on this test's migrated schema (worker-side tests)."""
    from worker_helpers import open_runner

    async with open_runner(pg_dsn, schema) as runner:
        yield runner
