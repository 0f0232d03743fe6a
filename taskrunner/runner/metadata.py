"""`set_metadata`, `get_metadata`, `delete_metadata`: small state beside the queue.

Keys are checked here, before a round trip, so a bad one is an `InvalidArguments`
naming the problem rather than a constraint error from the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import asyncpg

from taskrunner.errors import InvalidArguments
from taskrunner.queue.metadata import MetadataStore
from taskrunner.runner.options import check_connection

if TYPE_CHECKING:
    from taskrunner.queue import JobQueue

MAX_METADATA_KEY = 255  # characters; the table checks it too (migration 0006)


def check_key(key: object) -> str:
    if not isinstance(key, str):
        raise InvalidArguments(
            None, f"a metadata key must be a str, not {type(key).__name__}", field="key"
        )
    try:
        key.encode()
    except UnicodeEncodeError:
        raise InvalidArguments(
            None, "a metadata key must be valid text (it has a lone surrogate)", field="key"
        ) from None
    if not key or len(key) > MAX_METADATA_KEY or "\x00" in key:
        raise InvalidArguments(
            None,
            f"a metadata key must be 1 to {MAX_METADATA_KEY} characters without NUL, "
            f"not {len(key)} characters{' with a NUL' if chr(0) in key else ''}",
            field="key",
        )
    return key


def check_value(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise InvalidArguments(
        None,
        f"a metadata value must be bytes, not {type(value).__name__} (encode it first)",
        field="value",
    )


class MetadataVerbs:
    """The metadata verbs of TaskRunner (a part of it, kept apart)."""

    if TYPE_CHECKING:
        schema: str

        @property
        def job_queue(self) -> JobQueue: ...

    @property
    def _metadata(self) -> MetadataStore:
        return MetadataStore(self.job_queue.db, self.schema)

    async def set_metadata(
        self, key: str, value: bytes, *, connection: asyncpg.Connection | None = None
    ) -> None:
        """Store `value` under `key` (replacing what was there); with `connection`, inside
        that connection's transaction, so it commits or rolls back with the caller's."""
        checked_key, checked_value = check_key(key), check_value(value)
        check_connection(connection, None)
        await self._metadata.set(checked_key, checked_value, connection=connection)

    async def get_metadata(self, key: str) -> bytes | None:
        """The value stored under `key`, or None."""
        return await self._metadata.get(check_key(key))

    async def delete_metadata(self, key: str) -> bool:
        """Remove `key`; whether it was set."""
        return await self._metadata.delete(check_key(key))
