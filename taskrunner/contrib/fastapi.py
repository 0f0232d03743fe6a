"""Request ids for FastAPI, Starlette or any ASGI app: `app.add_middleware(RequestIdMiddleware)`.

Plain ASGI, so it needs nothing of FastAPI and runs in the request's own task: the id it
puts in `request_context` is the current one in the endpoint (sync endpoints too, which
Starlette runs in a thread with a copy of the context), so every job the request enqueues
carries it, and so does every log record (`taskrunner.JsonFormatter` writes it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import ExitStack
from typing import Any

from taskrunner.contrib.request_ids import enter_request_id

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["RequestIdMiddleware"]


class RequestIdMiddleware:
    """Takes the request id from the `X-Request-ID` header (or makes a new one when it is
    missing or unusable), makes it taskrunner's current request id for the request, and
    echoes it in the response's `X-Request-ID` header.

    `header` names another header; `trust_header=False` ignores the incoming one (for an
    app not behind a proxy that sets it) and always makes a new id."""

    def __init__(
        self, app: ASGIApp, *, header: str = "X-Request-ID", trust_header: bool = True
    ) -> None:
        self.app = app
        self.header = header.lower().encode("latin-1")
        self.trust_header = trust_header

    def _incoming(self, scope: Scope) -> str | None:
        if not self.trust_header:
            return None
        for name, value in scope.get("headers", ()):
            if name.lower() == self.header:
                text: str = value.decode("latin-1")
                return text
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        with ExitStack() as stack:
            request_id = enter_request_id(stack, self._incoming(scope))
            echoed = (self.header, request_id.encode("latin-1"))

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = [h for h in message.get("headers", ()) if h[0].lower() != echoed[0]]
                    message["headers"] = [*headers, echoed]
                await send(message)

            await self.app(scope, receive, send_with_id)
