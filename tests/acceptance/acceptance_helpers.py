"""Helpers for the acceptance tests: real `python -m taskrunner` processes.

Imported by the test modules of this folder (`from acceptance_helpers import ...`). There
is deliberately no conftest.py here: a second rootless conftest module would shadow
tests/conftest.py for modules that `from conftest import ...`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from taskrunner import Task, TaskRunner

ROOT = Path(__file__).resolve().parents[2]  # the repository: tests/acceptance/ is two down
APPS = "tests.acceptance.apps"
SCHEMA_VAR = "TR_TEST_SCHEMA"


def import_app(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import tests.acceptance.apps.<name> in this process (the repository root goes on
    sys.path for the test, so process-pool children spawned meanwhile find it too)."""
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module(f"{APPS}.{name}")


def environment(dsn: str, schema: str | None = None) -> dict[str, str]:
    """The environment of a CLI process: our DSN and schema, the repo importable."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TASKRUNNER_DSN")}
    env["TASKRUNNER_DSN"] = dsn
    if schema is not None:
        env[SCHEMA_VAR] = schema
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "taskrunner", *args]


@dataclass
class Completed:
    code: int
    stdout: str
    stderr: str


async def run_program(argv: list[str], env: dict[str, str], timeout: float = 30.0) -> Completed:
    """Run a program from the repository root and collect its output."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Completed(proc.returncode, out.decode(), err.decode())


async def run_cli(*args: str, env: dict[str, str], timeout: float = 30.0) -> Completed:
    """Run `python -m taskrunner ARGS` from the repository root."""
    return await run_program(command(*args), env, timeout)


def _open_log(path: Path) -> IO[bytes]:
    return path.open("wb")


@dataclass
class WorkerProcess:
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    async def exit_code(self, timeout: float) -> int:
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"worker {self.pid} did not exit within {timeout}s; its log:\n{self.log()}"
            ) from None


@contextlib.asynccontextmanager
async def worker_process(
    app: str, env: dict[str, str], log_path: Path, *options: str
) -> AsyncIterator[WorkerProcess]:
    """`python -m taskrunner worker APP OPTIONS`, killed at the end if still running."""
    log_file = _open_log(log_path)
    try:
        proc = await asyncio.create_subprocess_exec(
            *command("worker", app, *options),
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
        worker = WorkerProcess(proc, log_path)
        try:
            yield worker
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        log_file.close()


def mirror(runner: TaskRunner, tasks: Iterable[Task[..., Any]]) -> None:
    """Register an app's tasks on a test's own runner (same names, queues, attempts), so
    the test can enqueue them into its schema."""
    for task in tasks:
        runner.task(name=task.name, queue=task.queue, max_attempts=task.max_attempts)(task.func)


def _exists(path: Path) -> bool:
    return path.exists()


async def wait_for_file(path: Path, timeout: float, proc: WorkerProcess | None = None) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not _exists(path):
        if loop.time() > deadline:
            log = proc.log() if proc is not None else ""
            raise AssertionError(f"{path.name} did not appear within {timeout}s\n{log}")
        if proc is not None and proc.process.returncode is not None:
            code = proc.process.returncode
            raise AssertionError(f"the worker exited early ({code}):\n{proc.log()}")
        await asyncio.sleep(0.02)


@dataclass
class BlackHoleProxy:
    """benchmarks/chaos's TCP proxy in front of the server, one listener: `block()` stops
    all traffic without closing anything (a partition), `heal()` lets it through again."""

    process: asyncio.subprocess.Process
    port: int

    def dsn(self, dsn: str) -> str:
        """`dsn` with the proxy's port instead of the server's."""
        parts = urlsplit(dsn)
        host = parts.hostname or "127.0.0.1"
        auth = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{auth}{host}:{self.port}"))

    async def _command(self, line: str) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()
        answer = await asyncio.wait_for(self.process.stdout.readline(), 10)
        assert answer.strip() == b"ok", answer

    async def block(self) -> None:
        await self._command("block 0")

    async def heal(self) -> None:
        await self._command("heal 0")


@contextlib.asynccontextmanager
async def black_hole_proxy(dsn: str) -> AsyncIterator[BlackHoleProxy]:
    """A private proxy to the server of `dsn`, ended with the block."""
    upstream = urlsplit(dsn).port or 5432
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.chaos.proxy",
        "--upstream-port",
        str(upstream),
        "--listeners",
        "1",
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = await asyncio.wait_for(proc.stdout.readline(), 20)
        (port,) = json.loads(first)["ports"]
        yield BlackHoleProxy(proc, port)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
