"""Connection concerns: DSN resolution, embedded PostgreSQL, pools, migrations."""

from taskrunner.db.dsn import ResolvedDsn, listen_target, resolve_dsn
from taskrunner.db.identifiers import quote_schema, validate_schema
from taskrunner.db.migrator import Migrator
from taskrunner.db.pool import (
    CLAIM_SESSION_SETTINGS,
    CONNECT_WAIT,
    HOT_PATH_SESSION_SETTINGS,
    WORKER_COMMAND_TIMEOUT,
    WORKER_SESSION_SETTINGS,
    close_quickly,
    connect,
    create_pool,
)

__all__ = [
    "CLAIM_SESSION_SETTINGS",
    "CONNECT_WAIT",
    "HOT_PATH_SESSION_SETTINGS",
    "WORKER_COMMAND_TIMEOUT",
    "WORKER_SESSION_SETTINGS",
    "Migrator",
    "ResolvedDsn",
    "close_quickly",
    "connect",
    "create_pool",
    "listen_target",
    "quote_schema",
    "resolve_dsn",
    "validate_schema",
]
