"""A task's signature as a msgspec type: validate and encode at enqueue, decode for the
handler. Persisted payloads are plain JSON, so they follow msgspec's schema-evolution
rules (new parameters need defaults)."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from taskrunner.errors import PermanentFailure
from taskrunner.limits import MAX_NESTING, encoded_problem

_encoder = msgspec.json.Encoder()
_canonical = msgspec.json.Encoder(order="sorted")
_generic = msgspec.json.Decoder()
CALL_NESTING = MAX_NESTING + 1  # the array (or object) of a call's arguments is a level
# Encoded calls no longer than this cannot nest too deep or be too large: for them, the
# checks are two substring searches.
_SHORT = 2 * CALL_NESTING
# A null (msgspec writes nan and inf as null) or an escaped NUL: one regex search is
# cheaper than two `in` tests on bytes.
_SUSPECT = re.compile(rb"null|\\u0000")


_TAKES_POSITION = (
    inspect.Parameter.POSITIONAL_ONLY,
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.VAR_POSITIONAL,
)


class ArgumentsError(ValueError):
    """The call does not fit the signature; the runner names the task."""


# Errors of encoding values JSON cannot carry: unsupported types, ints msgspec cannot
# encode, lone surrogates (UnicodeEncodeError), nesting past the interpreter's limit.
_ENCODE_ERRORS = (msgspec.EncodeError, TypeError, OverflowError, UnicodeEncodeError, RecursionError)


def _encode_failure(exc: BaseException) -> ArgumentsError:
    if isinstance(exc, RecursionError):
        return ArgumentsError(f"the arguments nest deeper than {MAX_NESTING} levels")
    if isinstance(exc, UnicodeEncodeError):
        return ArgumentsError("the arguments have a lone surrogate, which is not valid UTF-8")
    return ArgumentsError(f"not JSON-encodable: {exc}")


def _non_finite(value: Any) -> bool:
    """Whether a float nan or inf hides in `value` (msgspec writes them as null, which the
    handler could never decode as a float)."""
    try:
        json.dumps(msgspec.to_builtins(value), allow_nan=False)
    except ValueError:
        return True
    return False


def _check_encoded(data: bytes, values: dict[str, Any]) -> None:
    """Refuse what PostgreSQL or JSON cannot carry in an encoded call, naming the argument.
    `values` maps the parameters to what was given. Callers come here only when the
    cheap test did not clear the call: it is long, or holds a null (which may stand for a
    nan) or an escaped NUL."""
    problem = encoded_problem(data, CALL_NESTING)
    if problem is None and (b"null" not in data or not _non_finite(values)):
        return
    for name, value in values.items():
        one = _encoder.encode(value)
        found = encoded_problem(one)
        if found is None and b"null" in one and _non_finite(value):
            found = "a float nan or inf, which JSON cannot carry"
        if found is not None:
            raise ArgumentsError(f"argument {name!r} has {found}")
    raise ArgumentsError(f"the arguments have {problem or 'a float nan or inf'}")


class UnresolvedHints(TypeError):
    """Type hints of a task that name something that does not exist where it is defined."""


def resolved_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """The function's type hints; UnresolvedHints naming each one that cannot be
    resolved (validating without it would silently accept anything)."""
    try:
        return typing.get_type_hints(func)
    except Exception as exc:
        first = exc
    globalns = getattr(func, "__globals__", None)
    bad = []
    for name, annotation in getattr(func, "__annotations__", {}).items():

        def probe() -> None: ...

        probe.__annotations__ = {name: annotation}
        try:
            typing.get_type_hints(probe, globalns=globalns)
        except Exception as exc:
            bad.append(f"{name}: {annotation!r} ({exc})")
    raise UnresolvedHints(
        f"type hints of {getattr(func, '__qualname__', func)!r} cannot be resolved: "
        + ("; ".join(bad) or str(first))
        + " (define the types at module level, or import them where the task is defined)"
    ) from None


class EncodedCall(msgspec.Struct, frozen=True, kw_only=True):  # one per enqueued job
    args: bytes  # JSON array of the positional arguments, as given
    kwargs: bytes  # JSON object of the keyword arguments, as given
    fingerprint: str  # identity of the call with defaults applied


class SignatureCodec:
    """Built once per task from its signature and type hints."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.signature = inspect.signature(func)
        hints = resolved_hints(func)
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        for param in self.signature.parameters.values():
            hint = hints.get(param.name, Any)
            if param.kind is param.VAR_POSITIONAL:
                fields.append((param.name, tuple[hint, ...], ()))  # type: ignore[valid-type]
            elif param.kind is param.VAR_KEYWORD:
                fields.append((param.name, dict[str, hint], {}))  # type: ignore[valid-type]
            elif param.default is param.empty:
                fields.append((param.name, hint))
            else:
                fields.append((param.name, hint, param.default))
        self._fields = fields
        self._qualname = getattr(func, "__qualname__", "task")
        self._after_result: type[msgspec.Struct] | None = None
        self._struct = msgspec.defstruct(
            f"{getattr(func, '__qualname__', 'task')}.Arguments",
            fields,
            kw_only=True,
            forbid_unknown_fields=True,
        )
        self._decoder = msgspec.json.Decoder(self._struct)
        # Plain "def f(a, b=1)" signatures (the common case) skip inspect's bind.
        params = list(self.signature.parameters.values())
        simple = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        self._names: tuple[str, ...] | None = tuple(p.name for p in params) if simple else None
        self._required = tuple(p.name for p in params if p.default is p.empty)
        self._defaults = {p.name: p.default for p in params if p.default is not p.empty}
        # A stored call that gives every parameter positionally (what enqueue writes for
        # positional calls) decodes straight into typed values, in one C call.
        # Checking such a call takes an array-like Struct of the parameters (msgspec keeps
        # a Struct's type information; a tuple type it works out on every call).
        self._positional: msgspec.json.Decoder[tuple[Any, ...]] | None = None
        self._positional_struct: type[msgspec.Struct] | None = None
        if self._names is not None:
            types = tuple(hints.get(name, Any) for name in self._names)
            self._positional = msgspec.json.Decoder(tuple[types] if types else tuple[()])  # type: ignore[valid-type]
            self._positional_struct = msgspec.defstruct(
                f"{getattr(func, '__qualname__', 'task')}.PositionalArguments",
                list(zip(self._names, types, strict=True)),
                array_like=True,
            )

    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call as {parameter: value}, without defaults; TypeError like bind's."""
        names = self._names
        if names is None or len(args) > len(names):
            return dict(self.signature.bind(*args, **kwargs).arguments)
        arguments = dict(zip(names, args, strict=False))
        for name, value in kwargs.items():
            if name in arguments:
                raise TypeError(f"multiple values for argument {name!r}")
            if name not in self._defaults and name not in self._required:
                raise TypeError(f"got an unexpected keyword argument {name!r}")
            arguments[name] = value
        for name in self._required:
            if name not in arguments:
                raise TypeError(f"missing a required argument: {name!r}")
        return arguments

    def encode(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], *, fingerprint: bool = True
    ) -> EncodedCall:
        """Check the call against the signature and the hints; encode it. The fingerprint
        (for idempotency keys) is computed only when asked for."""
        names = self._names
        if not kwargs and names is not None and len(args) == len(names):
            return self._encode_positional(args, names, fingerprint=fingerprint)
        return self._encode_general(args, kwargs, fingerprint=fingerprint)

    def _encode_general(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], *, fingerprint: bool
    ) -> EncodedCall:
        try:
            arguments = self._arguments(args, kwargs)
        except TypeError as exc:
            raise ArgumentsError(str(exc)) from None
        try:
            encoded_args = _encoder.encode(args)
            encoded_kwargs = _encoder.encode(kwargs)
            data = encoded_args + encoded_kwargs
            if len(data) > _SHORT or _SUSPECT.search(data):
                _check_encoded(data, arguments)
            msgspec.convert(arguments, self._struct)  # the types the handler gets
            digest = ""
            if fingerprint:  # the same call with defaults applied, keys sorted
                complete = {**self._defaults, **arguments}
                digest = hashlib.sha256(_canonical.encode(complete)).hexdigest()
        except _ENCODE_ERRORS as exc:
            raise _encode_failure(exc) from None
        except msgspec.ValidationError as exc:
            raise ArgumentsError(str(exc)) from None
        return EncodedCall(args=encoded_args, kwargs=encoded_kwargs, fingerprint=digest)

    def _encode_positional(
        self, args: tuple[Any, ...], names: tuple[str, ...], *, fingerprint: bool
    ) -> EncodedCall:
        """`encode` for a call that gives every parameter of a plain signature by position:
        the same checks, with no mapping of names to build (the batch enqueue's case)."""
        try:
            msgspec.convert(args, self._positional_struct)
            encoded_args = _encoder.encode(args)
            data = encoded_args
            if len(data) > _SHORT or _SUSPECT.search(data):
                _check_encoded(data, dict(zip(names, args, strict=True)))
            digest = ""
            if fingerprint:
                complete = dict(zip(names, args, strict=True))
                digest = hashlib.sha256(_canonical.encode(complete)).hexdigest()
        except _ENCODE_ERRORS as exc:
            raise _encode_failure(exc) from None
        except msgspec.ValidationError:
            # The general path says what is wrong by the parameter's name, not its position.
            return self._encode_general(args, {}, fingerprint=fingerprint)
        return EncodedCall(args=encoded_args, kwargs=b"{}", fingerprint=digest)

    def encode_after_result(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> EncodedCall:
        """Check and encode a call whose first positional argument comes later: a
        workflow step that receives the result of the step before it, prepended to
        `args` when it is released."""
        params = list(self.signature.parameters.values())
        first = next((p for p in params if p.kind in _TAKES_POSITION), None)
        if first is None:
            raise ArgumentsError(
                "it takes no positional parameter to receive the previous step's result "
                "(a step that receives nothing is written task.si(...))"
            )
        if first.name in kwargs and first.kind is not first.VAR_POSITIONAL:
            raise ArgumentsError(
                f"argument {first.name!r} receives the previous step's result; it cannot "
                "be given as well"
            )
        try:
            arguments = dict(self.signature.bind(None, *args, **kwargs).arguments)
        except TypeError as exc:
            raise ArgumentsError(str(exc)) from None
        if first.kind is first.VAR_POSITIONAL:
            arguments[first.name] = arguments[first.name][1:]
        else:
            del arguments[first.name]
        if self._after_result is None:
            fields = [
                (f[0], Any, None)
                if f[0] == first.name and first.kind is not first.VAR_POSITIONAL
                else f
                for f in self._fields
            ]
            self._after_result = msgspec.defstruct(
                f"{self._qualname}.ArgumentsAfterResult",
                fields,
                kw_only=True,
                forbid_unknown_fields=True,
            )
        try:
            encoded_args = _encoder.encode(args)
            encoded_kwargs = _encoder.encode(kwargs)
            data = encoded_args + encoded_kwargs
            if len(data) > _SHORT or _SUSPECT.search(data):
                _check_encoded(data, arguments)
            msgspec.convert(arguments, self._after_result)
            complete = {k: v for k, v in self._defaults.items() if k != first.name}
            digest = hashlib.sha256(_canonical.encode({**complete, **arguments})).hexdigest()
        except _ENCODE_ERRORS as exc:
            raise _encode_failure(exc) from None
        except msgspec.ValidationError as exc:
            raise ArgumentsError(str(exc)) from None
        return EncodedCall(args=encoded_args, kwargs=encoded_kwargs, fingerprint=digest)

    def decode(self, args: bytes, kwargs: bytes) -> tuple[list[Any], dict[str, Any]]:
        """Typed positional and keyword arguments for the handler."""
        if self._positional is not None and kwargs == b"{}":
            try:
                return list(self._positional.decode(args)), {}
            except msgspec.ValidationError:
                pass  # defaults to fill in, or a mismatch: the general path tells which
        raw_args = _generic.decode(args)
        raw_kwargs = _generic.decode(kwargs)
        if not isinstance(raw_args, list) or not isinstance(raw_kwargs, dict):
            raise ArgumentsError(
                "stored arguments are corrupted: args must be a JSON array and kwargs a "
                f"JSON object, not {type(raw_args).__name__} and {type(raw_kwargs).__name__}"
            )
        try:
            typed = msgspec.convert(self._arguments(tuple(raw_args), raw_kwargs), self._struct)
        except (TypeError, msgspec.ValidationError) as exc:
            raise ArgumentsError(f"stored arguments no longer fit the signature: {exc}") from None
        if self._names is not None:  # plain signature: everything positional, in order
            return [getattr(typed, name) for name in self._names], {}
        positional: list[Any] = []
        keywords: dict[str, Any] = {}
        for param in self.signature.parameters.values():
            value = getattr(typed, param.name)
            if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
                positional.append(value)
            elif param.kind is param.VAR_POSITIONAL:
                positional.extend(value)
            elif param.kind is param.KEYWORD_ONLY:
                keywords[param.name] = value
            else:
                keywords.update(value)
        return positional, keywords


def encode_result(value: Any) -> bytes:
    """The handler's return value as JSON; one that cannot be stored fails the job."""
    try:
        return _encoder.encode(value)
    except (msgspec.EncodeError, TypeError, OverflowError) as exc:
        raise PermanentFailure(f"the handler's result is not JSON-encodable: {exc}") from None


def decode_json(data: bytes) -> Any:
    return _generic.decode(data)
