"""Where the database is: the argument, $TASKRUNNER_DSN, $DATABASE_URL, else embedded."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path

from taskrunner.db import embedded

ENV_VARS = ("TASKRUNNER_DSN", "DATABASE_URL")


@dataclass(frozen=True, slots=True)
class ResolvedDsn:
    """A DSN and where it came from, so errors can say what was tried."""

    dsn: str
    source: str  # "argument", "$TASKRUNNER_DSN", "$DATABASE_URL" or "embedded"

    @property
    def redacted(self) -> str:
        return redact(self.dsn)


def redact(dsn: str) -> str:
    """The DSN with any password replaced, safe to print."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)


def configured_dsn(dsn: str | None = None) -> ResolvedDsn | None:
    """The first DSN that is set, or None when the embedded server is the answer."""
    if dsn:
        return ResolvedDsn(dsn, "argument")
    for var in ENV_VARS:
        value = os.environ.get(var)
        if value:
            return ResolvedDsn(value, f"${var}")
    return None


async def resolve_dsn(dsn: str | None = None, *, data_dir: Path | None = None) -> ResolvedDsn:
    """Resolve the DSN, starting the embedded PostgreSQL when nothing is configured."""
    found = configured_dsn(dsn)
    if found is not None:
        return found
    uri = await asyncio.to_thread(embedded.start, data_dir)
    return ResolvedDsn(uri, "embedded")
