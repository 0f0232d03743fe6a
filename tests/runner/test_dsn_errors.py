"""DSNs in errors: a password never shows, wherever it is written in the DSN, and a DSN
the driver cannot parse is a ConnectError naming it."""

from __future__ import annotations

import asyncio

import pytest

from taskrunner import TaskRunner
from taskrunner.db import ResolvedDsn, connect
from taskrunner.db.dsn import redact
from taskrunner.errors import ConnectError, InvalidSchemaName

SECRET_DSNS = [
    "postgresql://postgres:hunter2@127.0.0.1:1/x",
    "postgresql://postgres:hun@ter2x@127.0.0.1:1/x",
    "postgresql://postgres@127.0.0.1:1/x?password=hunter2",
    "postgresql://postgres@127.0.0.1:1/x?sslmode=disable&password=hunter2&x=1",
    "host=127.0.0.1 port=1 user=postgres password=hunter2 dbname=x",
    "host=127.0.0.1 port=1 password='hunter2 two' dbname=x",
    "postgresql://postgres:hunter2@127.0.0.1:notaport/x",
]


@pytest.mark.parametrize("dsn", SECRET_DSNS)
async def test_a_connect_error_never_shows_the_password(dsn: str):
    with pytest.raises(ConnectError) as raised:
        await asyncio.wait_for(connect(ResolvedDsn(dsn, "argument"), wait=0, timeout=2), 10)

    message = str(raised.value)
    assert "hunter2" not in message
    assert "ter2x" not in message
    assert "***" in message


@pytest.mark.parametrize("dsn", SECRET_DSNS)
def test_the_printed_form_of_a_dsn_never_shows_the_password(dsn: str):
    assert "hunter2" not in redact(dsn)
    assert "hunter2" not in repr(ResolvedDsn(dsn, "argument"))


@pytest.mark.parametrize("port", ["notaport", "99999"])
async def test_a_bad_port_raises_connect_error_naming_the_dsn(port: str, bare_schema: str):
    dsn = f"postgresql://postgres:hunter2@127.0.0.1:{port}/x"
    runner = TaskRunner(dsn, schema=bare_schema)

    with pytest.raises(ConnectError) as raised:
        await asyncio.wait_for(runner.open(), 30)

    assert f"postgresql://postgres:***@127.0.0.1:{port}/x" in str(raised.value)
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize("name", ["pg_jobs", "PG_jobs", "pg_temp", "information_schema"])
def test_a_schema_name_postgresql_keeps_for_itself_is_refused(name: str):
    with pytest.raises(InvalidSchemaName, match="pg_"):
        TaskRunner("postgresql://postgres@127.0.0.1:1/unused", schema=name)
