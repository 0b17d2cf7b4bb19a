"""Browser sessions without a key in any URL: `POST /api/v1/session` with the key in a header sets a short-lived,
signed, HttpOnly cookie; the routes a browser must open without headers (an EventSource, a download link) accept it.

The cookie holds who the key stands for (name, role, scope), the realm and an expiry, signed with HMAC-SHA256 under
a secret of the running app (random per process unless one is given: a restart ends every session, and the page
simply posts its key again). It never holds the key. A key revoked while a session is open keeps that session until
it expires (`ttl_s`, 10 minutes by default): the price of not looking the key up on every event of a stream.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel

from serverkit.auth import API_KEY_HEADER, BEARER, COOKIE, Guard, Principal, Scope

__all__ = ["COOKIE", "SessionOut", "SessionSigner", "session_router"]
DEFAULT_TTL_S = 600.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issues and checks session tokens of one realm."""

    def __init__(self, realm: str, secret: bytes | None = None, ttl_s: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.realm = realm
        self.secret = secret or secrets.token_bytes(32)
        self.ttl_s = ttl_s
        self.clock = clock

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, principal: Principal) -> tuple[str, float]:
        """A token for `principal` and its expiry (epoch seconds)."""
        expires = self.clock() + self.ttl_s
        body = {"realm": self.realm, "name": principal.name, "role": principal.role,
                "scope": principal.scope.to_json(), "exp": round(expires, 3)}  # fmt: skip
        payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
        return f"{payload}.{self._sign(payload)}", expires

    def verify(self, token: str) -> Principal | None:
        """The principal of a valid, unexpired token of this realm; None for anything else."""
        payload, _, signature = token.partition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            body = json.loads(_unb64(payload))
            if body["realm"] != self.realm or float(body["exp"]) <= self.clock():
                return None
            return Principal(str(body["name"]), str(body["role"]), Scope.from_json(body["scope"]))
        except (ValueError, KeyError, TypeError):
            return None


class SessionOut(BaseModel):
    """Who the session stands for and until when (the cookie itself is HttpOnly: scripts never see it)."""

    name: str
    role: str
    expires_at: datetime


def _secure(request: Request) -> bool:
    """Secure cookies when the page is served over TLS (directly, or by a proxy that says so)."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


def session_router(guard: Guard, prefix: str = "/api/v1") -> APIRouter:
    """`POST {prefix}/session` (key in a header: sets the cookie) and `DELETE {prefix}/session` (clears it)."""
    router = APIRouter(prefix=prefix, tags=["session"])

    @router.post("/session", response_model=SessionOut, status_code=201)
    def open_session(request: Request, response: Response, _key: str | None = Security(API_KEY_HEADER),
                     _bearer: HTTPAuthorizationCredentials | None = Security(BEARER)) -> SessionOut:  # fmt: skip
        """Trade the key (in X-API-Key or Authorization, never the URL) for a session cookie: HttpOnly,
        SameSite=Strict, Secure over TLS, signed, expiring after the session's life."""
        principal = guard.principal(request)  # headers only: a session does not renew itself
        signer = guard.realm_of(request.app).sessions
        token, expires = signer.issue(principal)
        response.set_cookie(COOKIE, token, max_age=int(signer.ttl_s), httponly=True, samesite="strict",
                            secure=_secure(request), path="/")  # fmt: skip
        return SessionOut(name=principal.name, role=principal.role, expires_at=datetime.fromtimestamp(expires, UTC))

    @router.delete("/session", status_code=204, response_class=Response)
    def close_session(request: Request) -> Response:
        """Forget the session cookie (no key needed: it only clears what this browser holds)."""
        response = Response(status_code=204)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request))
        return response

    return router
