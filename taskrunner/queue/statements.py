"""Named SQL statements, loaded once from sql/*.sql.

Each statement starts with `-- name: <name>` followed by comment lines saying why; the
schema marker is replaced with the quoted schema when a queue is built for a schema.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

from taskrunner.db.identifiers import substitute_schema

_NAME_LINE = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Statement:
    name: str
    source: str  # the file it came from
    text: str  # with the schema marker still in place


def parse_statements(text: str, source: str) -> list[Statement]:
    parts = _NAME_LINE.split(text)
    if parts[0].strip():
        raise ValueError(f"{source}: text before the first '-- name:' line")
    found = []
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        sql = body.strip()
        if not sql:
            raise ValueError(f"{source}: statement {name} is empty")
        found.append(Statement(name, source, sql.rstrip(";").strip()))
    return found


@cache
def load_statements() -> Mapping[str, Statement]:
    """Every named statement of the package, by name; a repeated name is an error."""
    by_name: dict[str, Statement] = {}
    folder = importlib.resources.files("taskrunner.queue") / "sql"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for statement in parse_statements(entry.read_text(encoding="utf-8"), entry.name):
            if statement.name in by_name:
                raise ValueError(f"statement {statement.name} is defined twice")
            by_name[statement.name] = statement
    return MappingProxyType(by_name)


@cache
def statements_for(schema: str) -> Mapping[str, str]:
    """The statements' SQL with `schema` substituted (validated and quoted)."""
    return MappingProxyType(
        {name: substitute_schema(s.text, schema) for name, s in load_statements().items()}
    )
