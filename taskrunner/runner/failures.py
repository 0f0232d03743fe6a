"""What a failed attempt records: a description of whatever the handler raised.

Describing a failure must not fail in turn: an exception's `__str__` may raise or return
something that is not a string, and its text may hold characters PostgreSQL does not
store (NUL) or cannot encode (lone surrogates). Every function here returns storable text.
"""

from __future__ import annotations

import traceback

MAX_ERROR_LENGTH = 4000


def safe_str(value: object) -> str:
    """str(value), or a stand-in naming its type when that raises."""
    try:
        text = str(value)
    except Exception:
        return f"<{type(value).__name__} whose str() failed>"
    return text if isinstance(text, str) else f"<{type(value).__name__}>"


def storable(text: str) -> str:
    """`text` with what PostgreSQL cannot store as text spelled out (NUL as \\x00, lone
    surrogates as \\udXXX)."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode()
    return text


def shorten(text: str, limit: int = MAX_ERROR_LENGTH) -> str:
    """At most about `limit` characters: the start and the end, where the cause is."""
    if len(text) <= limit:
        return text
    return text[: limit // 2] + "\n...\n" + text[-limit // 2 :]


def error_text(exc: BaseException) -> str:
    """The `last_error` of an attempt that raised `exc`: its type, message and traceback."""
    try:
        detail = "".join(traceback.format_exception(exc))
    except Exception:
        detail = "(its traceback could not be formatted)"
    return shorten(storable(f"{type(exc).__name__}: {safe_str(exc)}\n\n{detail}"))
