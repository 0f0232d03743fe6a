"""Schema names are validated once and quoted once, before any SQL is built."""

from __future__ import annotations

import re

from taskrunner.errors import InvalidSchemaName

# At most 56 characters: the notification channels "<schema>.jobs" and "<schema>.cancel"
# must fit PostgreSQL's 63-byte identifier limit, or pg_notify fails on every enqueue.
MAX_SCHEMA_LENGTH = 63 - len(".cancel")
_PLAIN_IDENTIFIER = re.compile(rf"[A-Za-z_][A-Za-z0-9_]{{0,{MAX_SCHEMA_LENGTH - 1}}}")
SCHEMA_MARKER = "/*schema*/"


# Names PostgreSQL keeps for itself: CREATE SCHEMA refuses pg_*, and information_schema
# is the server's own.
RESERVED_PREFIX = "pg_"
RESERVED_SCHEMAS = frozenset({"information_schema"})


def validate_schema(schema: str) -> str:
    """Return `schema` if it is a plain identifier PostgreSQL lets us create, else raise
    InvalidSchemaName."""
    if (
        not isinstance(schema, str)
        or not _PLAIN_IDENTIFIER.fullmatch(schema)
        or schema.lower().startswith(RESERVED_PREFIX)
        or schema.lower() in RESERVED_SCHEMAS
    ):
        raise InvalidSchemaName(str(schema))
    return schema


def quote_schema(schema: str) -> str:
    """The schema as a quoted identifier; safe because validate_schema allows no quotes."""
    return '"' + validate_schema(schema) + '"'


def substitute_schema(sql: str, schema: str) -> str:
    """Replace every schema marker with the quoted schema and a dot."""
    return sql.replace(SCHEMA_MARKER, quote_schema(schema) + ".")
