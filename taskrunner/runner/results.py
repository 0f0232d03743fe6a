"""Typed results: a job's stored JSON result decoded by its handler's return type.

`runner.result(job_id)` of a task registered on that runner gives back a datetime for
`-> datetime`, the dataclass or Struct for `-> Point`, and so on, as msgspec decodes it.
Without a usable annotation (none, `Any`, an unresolvable name), or when the stored value
does not fit it (the handler returned something else), the value comes back as stored:
plain JSON types.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from typing import Any

import msgspec

_UNTYPED: Any = object()


@functools.lru_cache(maxsize=1024)
def return_type(func: Callable[..., Any]) -> Any:
    """The function's return annotation, or _UNTYPED when it says nothing usable."""
    try:
        hint = typing.get_type_hints(func).get("return", Any)
    except Exception:  # unresolvable forward references
        return _UNTYPED
    if hint is Any or hint is None or hint is type(None):
        return _UNTYPED
    return hint


def typed_result(func: Callable[..., Any] | None, value: Any) -> Any:
    """`value` (decoded JSON) converted to func's return type where that is possible."""
    if func is None or value is None:
        return value
    hint = return_type(func)
    if hint is _UNTYPED:
        return value
    try:
        return msgspec.convert(value, hint)
    except (msgspec.ValidationError, TypeError, ValueError):
        return value
