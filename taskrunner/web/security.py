"""The dashboard's guards: HTTP Basic on every request when a password is set, and
CSRF tokens on every action.

CSRF tokens are signed double-submit tokens: a random value in a strict same-site,
HTTP-only cookie, and in each form its HMAC under a secret of this app's. A page of
another site can neither read the cookie nor compute the HMAC, so it cannot forge a form
that passes; the comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

CSRF_COOKIE = "taskrunner_csrf"
CSRF_FIELD = "csrf_token"
REALM = "taskrunner dashboard"


def password_matches(header: str | None, password: str) -> bool:
    """Whether an Authorization header carries `password` (any user name)."""
    if not header:
        return False
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    _, sep, given = decoded.partition(b":")
    # Constant-time over the bytes, so the time taken tells nothing of the password.
    return bool(sep) and hmac.compare_digest(given, password.encode("utf-8"))


class BasicAuth:
    """ASGI middleware: 401 with a Basic challenge unless the request has the password."""

    def __init__(self, app: ASGIApp, password: str) -> None:
        self.app = app
        self.password = password

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    header = value.decode("latin-1")
            if not password_matches(header, self.password):
                response = PlainTextResponse(
                    "authentication required",
                    status_code=401,
                    headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Csrf:
    """Issues and checks the tokens of one app (a secret of its own per process)."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def _sign(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()

    def token_for(self, request: Request) -> str:
        """The token for the forms of this page; a new cookie value when it has none."""
        nonce = request.cookies.get(CSRF_COOKIE)
        if not nonce:
            nonce = getattr(request.state, "csrf_nonce", None) or secrets.token_urlsafe(24)
            request.state.csrf_nonce = nonce  # set on the response by set_cookie
        return self._sign(nonce)

    def set_cookie(self, request: Request, response: Response) -> None:
        nonce = getattr(request.state, "csrf_nonce", None)
        if nonce:
            response.set_cookie(
                CSRF_COOKIE,
                nonce,
                httponly=True,
                samesite="strict",
                path=request.scope.get("root_path") or "/",
            )

    def is_valid(self, request: Request, token: object) -> bool:
        nonce = request.cookies.get(CSRF_COOKIE)
        if not nonce or not isinstance(token, str) or not token:
            return False
        return hmac.compare_digest(self._sign(nonce), token)


SECURITY_HEADERS = {
    # No framing (clickjacking of the action buttons), no inline script, no sniffing.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
