"""A private redis-server for one benchmark run: Debian's binary, a free port, a
temporary directory of its own, killed at the end. Every wait is bounded."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
# No snapshots and no append-only file: Redis in memory only, Celery's most favourable
# setting (and not durable: a crash of the server loses the queue and the results).
PERSISTENCE = {"save": "", "appendonly": "no"}


class RedisUnavailable(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class RedisServer:
    port: int
    version: str
    config: dict[str, str]

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=STOP_TIMEOUT)

    def flush(self) -> None:
        """Every database emptied: each run starts from nothing."""
        with contextlib.closing(self.client()) as client:
            client.flushall()


def _binary() -> str:
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(p).exists()),
        None,
    )
    if found is None:
        raise RedisUnavailable("redis-server is not installed (apt-get install -y redis-server)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    binary = _binary()
    folder = Path(tempfile.mkdtemp(prefix="bench_redis_"))
    port = _free_port()
    log = folder / "redis.log"
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
    command += ["--daemonize", "no", "--logfile", str(log)]
    for key, value in PERSISTENCE.items():
        command += [f"--{key}", value]
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield _wait_ready(proc, port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> RedisServer:
    deadline = time.monotonic() + START_TIMEOUT
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0)
    try:
        while True:
            if proc.poll() is not None:
                raise RedisUnavailable(f"redis-server exited {proc.returncode}: {_tail(log)}")
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RedisUnavailable(
                        f"redis-server did not answer within {START_TIMEOUT:g} s: {_tail(log)}"
                    ) from None
                time.sleep(0.05)
        info = client.info("server")
        config = {k: str(v) for k, v in client.config_get("save").items()}
        config.update({k: str(v) for k, v in client.config_get("appendonly").items()})
        return RedisServer(port=port, version=str(info["redis_version"]), config=config)
    finally:
        client.close()


def _tail(log: Path) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
    except OSError:
        return "(no log)"
