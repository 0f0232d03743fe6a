"""The request id a web request runs under, shared by the framework middlewares."""

from __future__ import annotations

from contextlib import ExitStack

from taskrunner import InvalidArguments, request_context


def enter_request_id(stack: ExitStack, incoming: str | None) -> str:
    """Enter taskrunner's `request_context` on `stack` with the id the client sent, or a
    new one when it sent none or one not worth keeping: only printable ASCII is kept, so
    echoing it in a response header is safe, and only what a job row can hold."""
    value = incoming.strip() if incoming else None
    if value and not (value.isascii() and value.isprintable()):
        value = None
    try:
        return stack.enter_context(request_context(value or None))
    except InvalidArguments:  # too long for a job row
        return stack.enter_context(request_context())
