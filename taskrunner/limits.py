"""What taskrunner accepts, in one place (README, "Limits"), and the checks that hold
every entry point to it.

Everything PostgreSQL would refuse, or store in a form that could not be read back, is
refused here first with an `InvalidArguments` naming the field, before anything is
written: a driver error half-way through a batch would say less and, for a caller that
retries, might leave a row behind. The checks are a few comparisons per call; the ones
on encoded arguments are substring searches over bytes msgspec has already produced.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from taskrunner.errors import InvalidArguments

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1  # priority, max_attempts (integer columns)
INT64_MAX = 2**63 - 1  # job ids (bigint)

# Task and queue names, idempotency keys and request ids, in characters. A key is
# indexed together with its task's name, and a B-tree entry must stay under about 2.7 kB
# however the text compresses: 200 + 400 characters of up to 4 bytes each fit.
MAX_NAME_LENGTH = 200
MAX_KEY_LENGTH = 400
MAX_REQUEST_ID_LENGTH = 200

MAX_ARGUMENTS_BYTES = 16 * 1024 * 1024  # one job's arguments, JSON-encoded
MAX_NESTING = 64  # lists, dicts, Structs and dataclasses inside one another

# Times: a delay (also a retry's) is at most 100 years; run_at lies between 1970 and
# 9000 (PostgreSQL would store year 1 or datetime.max as -infinity/infinity, which no
# Python datetime can hold). Leases and timeouts are finite and positive.
MAX_DELAY_SECONDS = 100 * 365 * 86400.0
MIN_RUN_AT = datetime(1970, 1, 1, tzinfo=UTC)
MAX_RUN_AT = datetime(9000, 1, 1, tzinfo=UTC)
MAX_LEASE_SECONDS = 7 * 86400.0
MAX_TIMEOUT_SECONDS = MAX_DELAY_SECONDS


def _refuse(field: str, detail: str, task: str | None, index: int | None) -> InvalidArguments:
    return InvalidArguments(task, f"{field} {detail}", index=index, field=field)


def check_text(
    value: Any,
    field: str,
    max_length: int,
    *,
    task: str | None = None,
    index: int | None = None,
) -> str:
    """A non-empty string PostgreSQL can store: no NUL, no lone surrogate, not too long."""
    if type(value) is not str and not isinstance(value, str):
        raise _refuse(field, f"must be a string, not {type(value).__name__}", task, index)
    if not value:
        raise _refuse(field, "must not be empty", task, index)
    if len(value) > max_length:
        raise _refuse(
            field, f"is {len(value)} characters long; at most {max_length} are allowed", task, index
        )
    if "\x00" in value:
        raise _refuse(field, "contains a NUL character (PostgreSQL cannot store it)", task, index)
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise _refuse(
                field, "contains a lone surrogate (not valid UTF-8)", task, index
            ) from None
    return value


def check_int(
    value: Any,
    field: str,
    *,
    minimum: int = INT32_MIN,
    maximum: int = INT32_MAX,
    task: str | None = None,
) -> int:
    """An int (not a bool, not a float) within [minimum, maximum]."""
    if type(value) is not int and (not isinstance(value, int) or isinstance(value, bool)):
        raise _refuse(field, f"must be an integer, not {type(value).__name__}", task, None)
    if not minimum <= value <= maximum:
        raise _refuse(field, f"must be between {minimum} and {maximum}, not {value}", task, None)
    return int(value)


def check_seconds(
    value: Any,
    field: str,
    *,
    maximum: float,
    positive: bool = False,
    task: str | None = None,
) -> float:
    """Seconds (a number or a timedelta): finite, not negative (or positive), at most
    `maximum`."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)  # an int too large for a float raises below
    else:
        kind = type(value).__name__
        raise _refuse(field, f"must be seconds (a number or a timedelta), not {kind}", task, None)
    if not math.isfinite(seconds):
        raise _refuse(field, f"must be a finite number of seconds, not {seconds}", task, None)
    if positive and seconds <= 0:
        raise _refuse(field, f"must be positive, not {seconds:g}", task, None)
    if seconds < 0:
        raise _refuse(field, f"must not be negative, not {seconds:g}", task, None)
    if seconds > maximum:
        raise _refuse(field, f"must be at most {maximum:g} seconds, not {seconds:g}", task, None)
    return seconds


def check_run_at(value: Any, *, task: str | None = None) -> datetime:
    """A timezone-aware datetime between MIN_RUN_AT and MAX_RUN_AT."""
    if not isinstance(value, datetime):
        raise _refuse(
            "run_at", f"must be a timezone-aware datetime, not {type(value).__name__}", task, None
        )
    try:
        aware = value.utcoffset() is not None
        in_range = aware and MIN_RUN_AT <= value <= MAX_RUN_AT
    except (OverflowError, ValueError, TypeError):
        aware, in_range = True, False
    if not aware:
        raise _refuse("run_at", "must be a timezone-aware datetime (it has no tzinfo)", task, None)
    if not in_range:
        raise _refuse(
            "run_at",
            f"must lie between {MIN_RUN_AT.year} and {MAX_RUN_AT.year}, not {value.isoformat()}",
            task,
            None,
        )
    return value


def check_job_id(value: Any, field: str = "job_id") -> int:
    """A job id: an int (not a bool, not a float that would be truncated) in bigint's range."""
    return check_int(value, field, minimum=-INT64_MAX - 1, maximum=INT64_MAX)


# ---- encoded arguments ------------------------------------------------------------

# A NUL character escaped by the JSON encoder: "\u0000" after an even number of
# backslashes (an odd one would make it the text "\u0000" itself).
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_INNERMOST = re.compile(rb"\[[^\[\]{}]*\]|\{[^\[\]{}]*\}")


def _nesting(data: bytes, limit: int) -> int:
    """How deep containers nest in JSON text (strings do not count), counted up to
    just past `limit`."""
    text = _STRING.sub(b'""', data)
    depth = 0
    while depth <= limit and (b"[" in text or b"{" in text):
        text = _INNERMOST.sub(b"", text)
        depth += 1
    return depth


def encoded_problem(data: bytes, nesting: int = MAX_NESTING) -> str | None:
    """What PostgreSQL would refuse in JSON text msgspec produced (a phrase to follow
    "has"), or None; `nesting` is how deep the text may nest (one more than
    MAX_NESTING for a call's array of arguments). Cheap in the common case: a length,
    a substring search and two byte counts."""
    if len(data) > MAX_ARGUMENTS_BYTES:
        return f"{len(data)} bytes encoded, more than the {MAX_ARGUMENTS_BYTES} allowed"
    if b"\\u0000" in data and _ESCAPED_NUL.search(data):
        return "a NUL character, which PostgreSQL cannot store"
    if data.count(b"[") + data.count(b"{") > nesting and _nesting(data, nesting) > nesting:
        return f"nesting deeper than {MAX_NESTING} levels"
    return None
