"""The schema's key/value store: SQL only, values are bytes (sql/metadata.sql)."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg

from taskrunner.queue.errors import translate_errors
from taskrunner.queue.statements import statements_for

# A pool or one connection (asyncpg ships no types, so this is documentation).
Executor: TypeAlias = Any


class MetadataStore:
    """Get, set and delete values by key in one schema's metadata table."""

    def __init__(self, db: Executor, schema: str) -> None:
        self.db = db
        self.sql = statements_for(schema)

    @translate_errors
    async def set(
        self, key: str, value: bytes, *, connection: asyncpg.Connection | None = None
    ) -> None:
        """Write inside the caller's transaction when `connection` is given."""
        await (connection or self.db).execute(self.sql["set_metadata"], key, value)

    @translate_errors
    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self.db.fetchval(self.sql["get_metadata"], key)
        return value

    @translate_errors
    async def delete(self, key: str) -> bool:
        deleted: bool = await self.db.fetchval(self.sql["delete_metadata"], key)
        return deleted
