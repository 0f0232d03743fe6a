"""The embedded PostgreSQL: with no server configured, a first run still works end to end.

The server runs under this test's own tmp dir (as a separate system user when run as root)
and stops when the interpreter exits.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from taskrunner.db import Migrator, ResolvedDsn, connect, resolve_dsn
from taskrunner.db import embedded as embedded_pg
from taskrunner.db.migrator import load_migrations
from taskrunner.queue import Completion, JobQueue, NewJob

# One worker starts the server (a module fixture) for all of them.
pytestmark = [pytest.mark.embedded, pytest.mark.slow, pytest.mark.xdist_group("embedded")]


@pytest.fixture(scope="module")
def embedded_uri(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    data_dir = tmp_path_factory.mktemp("embedded")
    return data_dir, embedded_pg.start(data_dir)


async def test_the_embedded_server_starts_migrates_and_runs_a_job_end_to_end(
    embedded_uri: tuple[Path, str],
):
    _, uri = embedded_uri
    conn = await connect(ResolvedDsn(uri, "embedded"))
    try:
        applied = await Migrator("embedded_app").migrate(conn)
        assert applied == [m.name for m in load_migrations()]
        queue = JobQueue(conn, "embedded_app")

        enqueued = (await queue.enqueue(NewJob(task="hello", args=b'["world"]'))).job
        (claimed,) = await queue.claim(["hello"], limit=1, owner="embedded-worker")
        ack = await queue.complete_many([Completion(lease=claimed.lease, result=b'"hi"')])

        assert claimed.id == enqueued.id
        assert ack.applied == {enqueued.id: "succeeded"}
        done = await queue.get(enqueued.id)
        assert done is not None
        assert (done.status, done.result) == ("succeeded", b'"hi"')
    finally:
        await conn.close()


async def test_starting_the_embedded_server_again_for_the_same_directory_joins_it(
    embedded_uri: tuple[Path, str],
):
    data_dir, uri = embedded_uri
    assert await asyncio.to_thread(embedded_pg.start, data_dir) == uri


async def test_with_no_dsn_configured_the_embedded_server_is_the_answer(
    embedded_uri: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
):
    data_dir, uri = embedded_uri
    monkeypatch.delenv("TASKRUNNER_DSN", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    resolved = await resolve_dsn(data_dir=data_dir)

    assert (resolved.dsn, resolved.source) == (uri, "embedded")
