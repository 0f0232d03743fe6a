"""A worker started before its database waits for it; a one-off command gives up after
its bounded wait."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from acceptance_helpers import environment, run_cli, worker_process

from taskrunner import TaskRunner
from taskrunner.db import CONNECT_WAIT, ResolvedDsn, create_pool
from taskrunner.errors import ConnectError
from taskrunner.queue import NewJob

APP = "tests.acceptance.apps.cli_app:runner"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def on_port(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


@contextlib.asynccontextmanager
async def tcp_proxy(port: int, dsn: str) -> AsyncIterator[None]:
    """Forwards 127.0.0.1:`port` to the server of `dsn`."""
    upstream = urlsplit(dsn)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            upstream.hostname or "127.0.0.1", upstream.port or 5432
        )
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()


def read_log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


async def wait_for_log(path: Path, text: str, count: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    log = ""
    while time.monotonic() < deadline:
        log = read_log(path)
        if log.count(text) >= count:
            return log
        await asyncio.sleep(0.05)  # the worker's log file offers no event; polled
    raise AssertionError(f"{count} x {text!r} not logged within {timeout}s:\n{log}")


async def test_a_worker_started_while_the_server_is_unreachable_works_once_it_comes(
    pg_dsn: str, schema: str, tmp_path: Path
):
    async with TaskRunner(pg_dsn, schema=schema) as producer:
        job = (await producer.job_queue.enqueue(NewJob(task="acceptance.echo", args=b"[7]"))).job
        port = free_port()
        env = environment(on_port(pg_dsn, port), schema)
        log_path = tmp_path / "worker.log"

        async with worker_process(
            APP, env, log_path, "--stop-when-idle", "--poll-interval", "0.1"
        ) as worker:
            log = await wait_for_log(log_path, "trying again in", 3, timeout=20)
            assert worker.process.returncode is None  # still waiting, well past 0.24 s
            assert "could not connect to PostgreSQL" in log
            async with tcp_proxy(port, pg_dsn):
                assert await worker.exit_code(30) == 0, worker.log()

        done = await producer.job_queue.get(job.id)
    assert done is not None
    assert (done.status, done.result) == ("succeeded", b"7")


@pytest.mark.slow
async def test_a_one_off_command_gives_up_after_its_bounded_wait(tmp_path: Path, pg_dsn: str):
    env = environment(on_port(pg_dsn, free_port()))
    started = time.monotonic()

    done = await run_cli("stats", env=env, timeout=60)

    took = time.monotonic() - started
    assert done.code == 1
    assert "could not connect to PostgreSQL" in done.stderr
    assert CONNECT_WAIT - 1 <= took < CONNECT_WAIT + 10
    assert done.stderr.count("trying again in") >= 3


async def test_a_pool_that_cannot_connect_raises_connect_error_after_its_wait(pg_dsn: str):
    target = ResolvedDsn(on_port(pg_dsn, free_port()), "test")
    started = time.monotonic()

    with pytest.raises(ConnectError, match="could not connect"):
        await create_pool(target, wait=1.0)

    assert 0.9 <= time.monotonic() - started < 5
