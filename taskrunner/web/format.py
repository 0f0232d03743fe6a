"""Jinja filters of the dashboard: ages, times and JSON documents as people read them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec


def age(seconds: float | None) -> str:
    """`3d 4h`, `5m 12s`, `800ms`; a dash for none."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{seconds:.1f}s"


def when(moment: datetime | None) -> str:
    """UTC, to the second; a dash for none."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    delta = (datetime.now(UTC) - moment).total_seconds()
    return f"in {age(-delta)}" if delta < 0 else f"{age(delta)} ago"


def as_json(value: Any) -> str:
    """Indented JSON (escaped by the template like any other text)."""
    try:
        return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()
    except (TypeError, msgspec.EncodeError):
        return repr(value)


def number(value: int | float) -> str:
    return f"{value:,.0f}" if isinstance(value, int) else f"{value:,.1f}"


FILTERS = {"age": age, "when": when, "ago": ago, "as_json": as_json, "number": number}
