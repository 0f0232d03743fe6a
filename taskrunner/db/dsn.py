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

    def __repr__(self) -> str:  # never the password, wherever it is printed
        return f"ResolvedDsn({self.redacted!r}, {self.source!r})"


# password=... in a URL's query or in the key=value form, quoted or not.
_PASSWORD_OPTION = re.compile(r"""((?:^|[?&\s])password\s*=\s*)('(?:[^'\\]|\\.)*'|[^&\s]*)""", re.I)
_MASK = "***"


def _url_password(dsn: str) -> str | None:
    """The password of a URL's user info: between the first ':' and the last '@' of the
    part before the host's path (as urllib reads it, so a password may hold '@')."""
    _scheme, sep, rest = dsn.partition("://")
    if not sep:
        return None
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, at, _host = netloc.rpartition("@")
    if not at:
        return None
    _user, colon, password = userinfo.partition(":")
    return password if colon and password else None


def secrets_in(dsn: str) -> list[str]:
    """Every password the DSN holds, longest first."""
    found = [m.group(2).strip("'") for m in _PASSWORD_OPTION.finditer(dsn)]
    url = _url_password(dsn)
    if url is not None:
        found.append(url)
        # A driver that reads up to the first '@' sees only the part before it.
        found.extend(part for part in url.split("@") if len(part) >= 4)
    return sorted({s for s in found if s}, key=len, reverse=True)


def redact(dsn: str) -> str:
    """The DSN with every password replaced, safe to print."""
    masked = _PASSWORD_OPTION.sub(lambda m: m.group(1) + _MASK, dsn)
    url = _url_password(masked)
    if url is not None:
        scheme, _, rest = masked.partition("://")
        start = rest.index(":") + 1
        rest = rest[:start] + _MASK + rest[start + len(url) :]
        masked = f"{scheme}://{rest}"
    return masked


def redact_text(text: str, dsn: str) -> str:
    """`text` (a driver's error, say) with the DSN's passwords masked."""
    for secret in secrets_in(dsn):
        text = text.replace(secret, _MASK)
    return text


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
