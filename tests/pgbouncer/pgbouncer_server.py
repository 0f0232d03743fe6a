"""A private PgBouncer in transaction mode in front of the test server, on a free port.

Imported by the test modules of this folder (`from pgbouncer_server import ...`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

START_TIMEOUT = 15.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def _run_as() -> list[str]:
    """PgBouncer refuses to run as root: drop to a user of the machine's."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return ["-u", user]
    raise RuntimeError("running as root, and no postgres or nobody user for PgBouncer")


@contextlib.contextmanager
def pgbouncer(binary: str, upstream_dsn: str) -> Iterator[tuple[str, Path]]:
    """Run PgBouncer until the block ends; yields its DSN (same user and database as
    `upstream_dsn`) and the file its log goes to."""
    up = urlsplit(upstream_dsn)
    user = up.username or "postgres"
    database = up.path.lstrip("/") or "postgres"
    password = f" password={up.password}" if up.password else ""
    port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="taskrunner-pgbouncer-"))
    folder.chmod(0o755)  # readable by the user PgBouncer drops to
    log_file = folder / "pgbouncer.log"
    config = folder / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host={up.hostname or '127.0.0.1'} port={up.port or 5432} user={user}{password}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "auth_type = any\n"
        "pool_mode = transaction\n"
        "max_client_conn = 1000\n"
        "default_pool_size = 40\n"
        "unix_socket_dir =\n"
    )
    config.chmod(0o644)
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [binary, *_run_as(), str(config)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _accepts(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PgBouncer did not start:\n{log_file.read_text()}")
            time.sleep(0.05)
        yield f"postgresql://{user}@127.0.0.1:{port}/{database}", log_file
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
