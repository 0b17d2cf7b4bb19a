"""API keys with roles, hashed at rest.

A key is a random 32-byte token (``secrets.token_urlsafe(32)``), shown once when created. The table keeps its
first 8 characters (to find the row) and sha256(salt || token) with a per-key random salt. A fast hash is enough:
the token carries 256 bits of entropy, so there is nothing to brute-force; the salt keeps equal hashes from
telling anything. Clients send it as ``Authorization: Bearer <token>`` or ``X-API-Key: <token>``.

Missing or unknown key -> 401; a known key of a role the endpoint does not allow -> 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request, status
from sqlalchemy import select
from sqlmodel import Session, col

from registry.models import ApiKey, Role
from registry.timeutil import system_clock

PREFIX_LEN = 8


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (goes into audit events as the actor) and its role."""

    name: str
    role: Role

    @property
    def actor(self) -> str:
        return f"{self.role.value}:{self.name}"


def _digest(salt: str, token: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + token.encode()).hexdigest()


def store_key(session: Session, name: str, role: Role, token: str) -> None:
    """Store a key whose token is known in advance (settings-managed deployments); hashed like any other."""
    if len(token) < PREFIX_LEN:
        raise ValueError(f"an API key needs at least {PREFIX_LEN} characters")
    salt = secrets.token_hex(16)
    session.add(ApiKey(name=name, role=role.value, prefix=token[:PREFIX_LEN], salt=salt, hash=_digest(salt, token),
                       created_at=system_clock()))
    session.flush()


def create_key(session: Session, name: str, role: Role) -> str:
    """Store a new random key and return its token (the only time it exists in clear)."""
    token = secrets.token_urlsafe(32)
    store_key(session, name, role, token)
    return token


def revoke_key(session: Session, name: str) -> int:
    """Revoke every live key of that name; returns how many."""
    rows = list(session.execute(select(ApiKey).where(col(ApiKey.name) == name, col(ApiKey.revoked_at).is_(None)))
                .scalars())
    for row in rows:
        row.revoked_at = system_clock()
        session.add(row)
    return len(rows)


def authenticate(session: Session, token: str) -> Principal | None:
    if len(token) < PREFIX_LEN:
        return None
    stmt = select(ApiKey).where(col(ApiKey.prefix) == token[:PREFIX_LEN], col(ApiKey.revoked_at).is_(None))
    for row in session.execute(stmt).scalars():
        if hmac.compare_digest(row.hash, _digest(row.salt, token)):
            return Principal(row.name, Role(row.role))
    return None


def token_from(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


def require_role(*roles: Role) -> Callable[[Request], Principal]:
    """FastAPI dependency: the caller's `Principal` if its key is valid and of one of `roles`."""
    allowed = frozenset(roles)

    def dependency(request: Request) -> Principal:
        from registry.api import service_of  # the app holds the service, and with it the sessions

        token = token_from(request)
        if token is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing API key (Authorization: Bearer <key>)",
                                headers={"WWW-Authenticate": "Bearer"})
        with service_of(request).reading() as session:
            principal = authenticate(session, token)
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked API key",
                                headers={"WWW-Authenticate": "Bearer"})
        if principal.role not in allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {principal.role.value} may not do this "
                                f"(allowed: {', '.join(sorted(r.value for r in allowed))})")
        return principal

    return dependency


READ = (Role.OPERATOR, Role.REGULATOR)
WRITE = (Role.OPERATOR,)
SUBMIT = (Role.OPERATOR, Role.AGENT)
