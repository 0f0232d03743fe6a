"""Named statements: they load, name only the configured schema, and PostgreSQL accepts them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import asyncpg
import pytest

import taskrunner.queue
from taskrunner.db.identifiers import SCHEMA_MARKER
from taskrunner.errors import InvalidSchemaName
from taskrunner.queue.cleanup import BATCHES
from taskrunner.queue.statements import load_statements, parse_statements, statements_for

EXPECTED = {
    "enqueue_many", "release_expired_keys",
    "claim_batch",
    "complete_many", "fail_many", "release_many",
    "extend_leases",
    "get_jobs", "list_jobs", "cancel", "pause", "resume", "retry", "stats",
    "count_queued", "runnable_exists", "next_run_at", "clear",
    "rescue_expired", "delete_finished",
    "get_idempotency_ttl", "set_idempotency_ttl",
}  # fmt: skip


def test_every_named_statement_loads():
    statements = load_statements()
    assert set(statements) >= EXPECTED
    for name, statement in statements.items():
        assert statement.name == name
        assert statement.source.endswith(".sql")
        assert statement.text
        assert not statement.text.endswith(";")


def test_every_statement_the_queue_uses_is_defined_and_every_defined_one_is_used():
    modules = [
        importlib.import_module(f"taskrunner.queue.{m.name}")
        for m in pkgutil.iter_modules(taskrunner.queue.__path__)
    ]
    source = "".join(inspect.getsource(m) for m in modules)
    used = set(re.findall(r'self\.sql\["([a-z_]+)"\]', source))
    used |= set(BATCHES.values())  # the cleanup's statements, chosen by (status, action)
    assert used == set(load_statements())


def test_every_statement_names_its_tables_through_the_schema_marker():
    for statement in load_statements().values():
        assert SCHEMA_MARKER in statement.text, statement.name


def test_statements_for_a_schema_name_only_that_schema_quoted():
    for name, sql in statements_for("shop_1").items():
        assert SCHEMA_MARKER not in sql, name
        assert '"shop_1".' in sql, name


def test_statements_for_a_hostile_schema_name_are_refused():
    with pytest.raises(InvalidSchemaName):
        statements_for('x"; drop table jobs; --')


def test_text_before_the_first_name_line_is_refused():
    with pytest.raises(ValueError, match="before the first"):
        parse_statements("SELECT 1;\n-- name: one\nSELECT 1;", "bad.sql")


def test_a_named_statement_without_a_body_is_refused():
    with pytest.raises(ValueError, match="empty"):
        parse_statements("-- name: one\n\n-- name: two\nSELECT 2;", "bad.sql")


def test_a_statement_keeps_its_leading_comments_and_loses_its_final_semicolon():
    (statement,) = parse_statements("-- name: one\n-- why\nSELECT 1;\n", "f.sql")
    assert (statement.name, statement.text) == ("one", "-- why\nSELECT 1")


async def test_every_statement_can_be_prepared_against_a_migrated_schema_without_search_path(
    pool: asyncpg.Pool, schema: str
):
    async with pool.acquire() as conn:
        await conn.execute("SET search_path = pg_catalog")  # nothing may rely on it
        try:
            for name, sql in statements_for(schema).items():
                try:
                    await conn.prepare(sql)
                except asyncpg.PostgresError as exc:  # pragma: no cover - the failure message
                    pytest.fail(f"statement {name} does not prepare: {exc}")
        finally:
            await conn.execute("RESET search_path")
