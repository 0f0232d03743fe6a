"""Fixtures of the dashboard's tests: an open runner over a schema of the test's own, the
dashboard app over it, and an HTTP client that talks to the app in the test's own loop.

A module of tasks, `tasks`, is registered on the runner: `ok(n)` returns n * 2, `boom`
always fails (a PermanentFailure, so one attempt), `flaky(key)` fails the first time it
runs with a key and succeeds after (a retry of it succeeds).

Like tests/runner/conftest.py, this file may be the module named `conftest` when other
tests import names from tests/conftest.py that way; it hands those on.
"""

from __future__ import annotations

import asyncio
import html
import importlib.util
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace

import httpx
import pytest
from starlette.applications import Starlette

from taskrunner import PermanentFailure, TaskRunner
from taskrunner.web import create_app

_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
_root_conftest: ModuleType | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _root_conftest
    for plugin in config.pluginmanager.get_plugins():
        path = getattr(plugin, "__file__", None)
        if isinstance(plugin, ModuleType) and path and Path(path).resolve() == ROOT_CONFTEST:
            _root_conftest = plugin


def _root() -> ModuleType:
    global _root_conftest
    if _root_conftest is None:
        spec = importlib.util.spec_from_file_location("_tests_root_conftest", ROOT_CONFTEST)
        assert spec is not None
        assert spec.loader is not None
        _root_conftest = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_root_conftest)
    return _root_conftest


def need_binary(name: str, why: str) -> str:
    """tests/conftest.py's."""
    path: str = _root().need_binary(name, why)
    return path


def new_schema_name() -> str:
    """tests/conftest.py's."""
    name: str = _root().new_schema_name()
    return name


async def drop_schema(dsn: str, schema: str) -> None:
    """tests/conftest.py's."""
    await _root().drop_schema(dsn, schema)


@pytest.fixture
async def runner(pg_dsn: str, bare_schema: str) -> AsyncIterator[TaskRunner]:
    async with TaskRunner(pg_dsn, schema=bare_schema) as opened:
        yield opened


@pytest.fixture
def tasks(runner: TaskRunner) -> SimpleNamespace:
    @runner.task(name="app.ok", max_attempts=1)
    async def ok(n: int) -> int:
        return n * 2

    @runner.task(name="app.boom", max_attempts=1)
    async def boom(text: str) -> None:
        raise PermanentFailure(f"boom: {text}")

    seen: set[str] = set()

    @runner.task(name="app.flaky", max_attempts=1)
    async def flaky(key: str) -> str:
        if key not in seen:
            seen.add(key)
            raise PermanentFailure(f"first run of {key} fails")
        return "fine now"

    return SimpleNamespace(ok=ok, boom=boom, flaky=flaky)


async def _client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://dashboard.test"
    )


@pytest.fixture
async def client(runner: TaskRunner) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client_for(create_app(runner)) as opened:
        yield opened


@pytest.fixture
def client_for() -> Callable[[Starlette], Awaitable[httpx.AsyncClient]]:
    """`async with await client_for(app)`: a client of another app (read-only, password)."""
    return _client_for


async def csrf_token(client: httpx.AsyncClient, page: str = "/jobs") -> str:
    """The token of a page's forms, from its head (the client keeps its cookie)."""
    response = await client.get(page)
    found = _TOKEN.search(response.text)
    assert found, f"no CSRF token on {page}"
    return html.unescape(found.group(1))


@pytest.fixture
def token() -> Callable[..., Awaitable[str]]:
    return csrf_token


@pytest.fixture
def work(runner: TaskRunner) -> Callable[[], Awaitable[None]]:
    """`await work()`: a worker of the runner until nothing is runnable."""

    async def run() -> None:
        await asyncio.wait_for(
            runner.run_worker(
                concurrency=4, stop_when_idle=True, poll_interval=0.05, handle_signals=False
            ),
            30,
        )

    return run
