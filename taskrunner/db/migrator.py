"""Apply the numbered .sql files of migrations/ to one schema, each exactly once.

Each migration runs in its own transaction together with the row that records it, under a
transaction-scoped advisory lock keyed by the schema, so any number of processes may
migrate at once: the first applies, the others find nothing left to do.
"""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import asyncpg

from taskrunner.db.identifiers import quote_schema, substitute_schema, validate_schema
from taskrunner.errors import MigrationError

_MIGRATION_FILE = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    version: str  # "0001"
    name: str  # "0001_initial"
    sql: str  # with the schema marker still in place


def _migrations_dir() -> Path:
    """Inside a wheel they ship as taskrunner/migrations; in a checkout they sit at the top."""
    packaged = importlib.resources.files("taskrunner") / "migrations"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "migrations"


@cache
def load_migrations() -> tuple[Migration, ...]:
    folder = _migrations_dir()
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _MIGRATION_FILE.fullmatch(path.name)
        if match is None:
            raise RuntimeError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(match.group(1), path.stem, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version number in {folder}")
    if not found:
        raise RuntimeError(f"no migrations found in {folder}")
    return tuple(found)


class Migrator:
    """Migrations for one schema; the schema name is checked before any SQL is built."""

    def __init__(self, schema: str) -> None:
        self.schema = validate_schema(schema)
        self._quoted = quote_schema(schema)
        self._lock_key = f"taskrunner.migrate:{schema}"

    async def applied(self, conn: asyncpg.Connection) -> set[str]:
        exists = await conn.fetchval(
            "SELECT to_regclass($1) IS NOT NULL", f"{self._quoted}.schema_migrations"
        )
        if not exists:
            return set()
        rows = await conn.fetch(f"SELECT version FROM {self._quoted}.schema_migrations")
        return {r["version"] for r in rows}

    async def pending(self, conn: asyncpg.Connection) -> list[str]:
        """Names of the migrations not yet applied, in order; changes nothing."""
        done = await self.applied(conn)
        return [m.name for m in load_migrations() if m.version not in done]

    async def migrate(self, conn: asyncpg.Connection, *, dry_run: bool = False) -> list[str]:
        """Apply what is pending (or with `dry_run`, only name it); return the names."""
        pending = await self.pending(conn)
        if dry_run or not pending:
            # Up to date, as every worker finds at start-up: two reads, no lock and no
            # transaction per migration (45 round trips that a replacement worker waited
            # for before its first claim).
            return pending
        applied_now: list[str] = []
        for migration in load_migrations():
            if await self._apply_one(conn, migration):
                applied_now.append(migration.name)
        return applied_now

    async def _apply_one(self, conn: asyncpg.Connection, migration: Migration) -> bool:
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", self._lock_key
            )
            await conn.execute(
                f"CREATE SCHEMA IF NOT EXISTS {self._quoted};"
                f"CREATE TABLE IF NOT EXISTS {self._quoted}.schema_migrations ("
                " version text PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = await conn.fetchval(
                f"SELECT true FROM {self._quoted}.schema_migrations WHERE version = $1",
                migration.version,
            )
            if done:
                return False
            try:
                await conn.execute(substitute_schema(migration.sql, self.schema))
            except asyncpg.PostgresError as exc:
                raise MigrationError(self.schema, migration.name, exc) from exc
            await conn.execute(
                f"INSERT INTO {self._quoted}.schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
        return True
