"""The pytest plugin as a user meets it: a test suite of their own, run by pytest.

The plugin is registered as the entry point `taskrunner` (group pytest11), so an
installed taskrunner loads it in every pytest run; from a checkout whose install predates
the entry point it is named with -p instead. One run is a subprocess, as a user's is; the
others run in this process, which is quicker.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import re

import asyncpg
import pytest

from taskrunner.testing.plugin import resolve_test_dsn

pytest_plugins = ["pytester"]

PLUGIN = "taskrunner.testing.plugin"

TASKS = '''
from taskrunner import TaskRunner

runner = TaskRunner(schema="shop")

@runner.task(name="shop.send_receipt")
async def send_receipt(order_id: int, email: str) -> str:
    return f"receipt {order_id} to {email}"

async def place_order(order_id: int, email: str) -> None:
    """Application code: enqueues through the task, as it does in production."""
    await send_receipt.enqueue(order_id, email)
'''

USER_TESTS = """
from taskrunner.testing import assert_enqueued, assert_not_enqueued, run_until_idle
from shop import place_order, send_receipt

async def test_placing_an_order_sends_a_receipt(fresh_runner):
    print("SCHEMA", fresh_runner.schema)
    await place_order(7, "ada@example.com")
    await assert_enqueued(fresh_runner, send_receipt, 7, "ada@example.com")
    (job,) = await run_until_idle(fresh_runner)
    assert job.result == "receipt 7 to ada@example.com"

async def test_each_test_starts_from_an_empty_schema(fresh_runner):
    print("SCHEMA", fresh_runner.schema)
    await assert_not_enqueued(fresh_runner, send_receipt)
"""


LOOP_SETTINGS = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"


def plugin_arguments() -> list[str]:
    installed = importlib.metadata.entry_points(group="pytest11", name="taskrunner")
    return [] if installed else ["-p", PLUGIN]


def schemas_printed(output: str) -> list[str]:
    return re.findall(r"SCHEMA (\S+)", output)


async def existing(dsn: str, schemas: list[str]) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])", schemas
        )
    finally:
        await conn.close()
    return [r["nspname"] for r in rows]


def test_a_user_suite_gets_its_runner_on_a_fresh_schema_per_test_dropped_after(
    pytester: pytest.Pytester, pg_dsn: str
) -> None:
    pytester.makepyfile(shop=TASKS, test_shop=USER_TESTS)
    pytester.makeini(
        f"""
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = function
        taskrunner_app = shop:runner
        taskrunner_dsn = {pg_dsn}
        """
    )
    result = pytester.runpytest_subprocess(*plugin_arguments(), "-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    schemas = schemas_printed(result.stdout.str())
    assert len(set(schemas)) == 2, result.stdout.str()
    assert asyncio.run(existing(pg_dsn, schemas)) == []


def test_a_conftest_fixture_can_give_the_runner_and_the_dsn_can_come_from_the_command_line(
    pytester: pytest.Pytester, pg_dsn: str
) -> None:
    pytester.makepyfile(shop=TASKS, test_shop=USER_TESTS)
    pytester.makeconftest(
        """
        import pytest
        from shop import runner

        @pytest.fixture
        def taskrunner_app():
            return runner
        """
    )
    pytester.makeini(LOOP_SETTINGS)
    result = pytester.runpytest(
        *plugin_arguments(), f"--taskrunner-dsn={pg_dsn}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=2)


def test_without_an_app_the_error_says_how_to_name_it(
    pytester: pytest.Pytester, pg_dsn: str
) -> None:
    pytester.makepyfile(shop=TASKS, test_shop=USER_TESTS)
    pytester.makeini(LOOP_SETTINGS)
    result = pytester.runpytest(
        *plugin_arguments(), f"--taskrunner-dsn={pg_dsn}", "-p", "no:cacheprovider"
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(['*set `taskrunner_app = "myapp.tasks:runner"`*'])


def test_an_app_that_is_not_a_runner_is_refused(pytester: pytest.Pytester, pg_dsn: str) -> None:
    pytester.makepyfile(shop=TASKS, test_shop=USER_TESTS)
    pytester.makeini(LOOP_SETTINGS + "taskrunner_app = shop:place_order\n")
    result = pytester.runpytest(
        *plugin_arguments(), f"--taskrunner-dsn={pg_dsn}", "-p", "no:cacheprovider"
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*shop:place_order is a function, not a TaskRunner*"])


def test_the_dsn_comes_from_the_option_then_the_ini_then_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKRUNNER_TEST_DSN", "postgresql://from-env/db")
    pytester.makeini("[pytest]\ntaskrunner_dsn = postgresql://from-ini/db\n")
    args = plugin_arguments()
    given = pytester.parseconfig(*args, "--taskrunner-dsn=postgresql://from-option/db")
    assert resolve_test_dsn(given) == "postgresql://from-option/db"
    assert resolve_test_dsn(pytester.parseconfig(*args)) == "postgresql://from-ini/db"
    pytester.makeini("[pytest]\n")
    assert resolve_test_dsn(pytester.parseconfig(*args)) == "postgresql://from-env/db"
    monkeypatch.delenv("TASKRUNNER_TEST_DSN")
    assert resolve_test_dsn(pytester.parseconfig(*args)) is None
