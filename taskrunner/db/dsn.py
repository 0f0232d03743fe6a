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
    # Behind a pooler in transaction mode (PgBouncer): connections keep no prepared
    # statements and send no session settings at start-up, which such a pooler refuses
    # and would leak to other clients' sessions.
    behind_pooler: bool = False

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


LISTEN_ENV_VAR = "TASKRUNNER_LISTEN_DSN"


def listen_target(target: ResolvedDsn, listen_dsn: str | None = None) -> ResolvedDsn | None:
    """Where a worker LISTENs: `listen_dsn`, else $TASKRUNNER_LISTEN_DSN, else the
    runner's own server unless that is behind a pooler in transaction mode, which hands
    a LISTEN's server session to other clients and loses its notifications (None: the
    worker polls)."""
    if listen_dsn:
        return ResolvedDsn(listen_dsn, "listen_dsn argument")
    value = os.environ.get(LISTEN_ENV_VAR)
    if value:
        return ResolvedDsn(value, f"${LISTEN_ENV_VAR}")
    return None if target.behind_pooler else target
