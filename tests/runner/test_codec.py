"""The argument codec: what a handler receives for what was stored."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from taskrunner.runner.codec import ArgumentsError, SignatureCodec


class Point(msgspec.Struct):
    x: int
    y: int


def handler(n: int, ratio: float, when: datetime, point: Point, label: str = "none") -> None:
    """A plain signature: positional calls take the codec's one-call path."""


CODEC = SignatureCodec(handler)
WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def stored(*args: object, **kwargs: object) -> tuple[bytes, bytes]:
    call = CODEC.encode(args, kwargs, fingerprint=False)
    return call.args, call.kwargs


def test_a_stored_positional_call_decodes_to_the_handlers_types():
    args, kwargs = CODEC.decode(*stored(1, 2, WHEN, Point(3, 4), "x"))

    assert args == [1, 2.0, WHEN, Point(3, 4), "x"]
    assert kwargs == {}
    assert isinstance(args[1], float)


def test_a_stored_call_without_its_defaulted_arguments_gets_the_defaults():
    args, _ = CODEC.decode(*stored(1, 2.5, WHEN, Point(0, 0)))

    assert args == [1, 2.5, WHEN, Point(0, 0), "none"]


def test_a_stored_call_by_keyword_decodes_the_same_as_by_position():
    by_keyword = CODEC.decode(*stored(n=1, ratio=2.5, when=WHEN, point=Point(0, 0), label="x"))

    assert by_keyword == CODEC.decode(*stored(1, 2.5, WHEN, Point(0, 0), "x"))


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (b'["one", 2.5, "2024-05-06T07:08:09Z", {"x": 0, "y": 0}]', "Expected `int`"),
        (b'[1, 2.5, "2024-05-06T07:08:09Z", {"x": 0, "y": 0}, "x", "extra"]', "too many"),
        (b"[1]", "missing a required argument"),
    ],
    ids=["wrong-type", "too-many", "too-few"],
)
def test_stored_arguments_that_do_not_fit_raise_arguments_error_saying_why(
    args: bytes, problem: str
):
    with pytest.raises(ArgumentsError, match=problem):
        CODEC.decode(args, b"{}")


def test_a_positional_call_of_the_wrong_type_is_refused_naming_the_parameter():
    with pytest.raises(ArgumentsError, match=r"\$\.ratio"):
        CODEC.encode((1, "not a number", WHEN, Point(0, 0), "x"), {}, fingerprint=False)


def test_a_positional_call_and_its_keyword_spelling_share_one_fingerprint():
    positional = CODEC.encode((1, 2.5, WHEN, Point(0, 0), "none"), {})
    by_keyword = CODEC.encode((), {"n": 1, "ratio": 2.5, "when": WHEN, "point": Point(0, 0)})

    assert positional.fingerprint == by_keyword.fingerprint
