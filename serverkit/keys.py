"""API keys hashed at rest, with a role and a scope; one table per service, one set of functions for all.

A key is a random 32-byte token (``secrets.token_urlsafe(32)``), shown once when created. The table keeps its
first 8 characters (to find the row) and sha256(salt || token) with a per-key random salt. A fast hash is enough:
the token carries 256 bits of entropy, so there is nothing to brute-force; the salt keeps equal hashes from
telling anything.

Each service declares its own table from `ApiKeyBase` (the registry's `api_key`, the controller's
`controller_api_key`), so an embedded registry and its controller can share a database without sharing keys.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import JSON, select
from sqlmodel import Field, Session, SQLModel, col

from serverkit.auth import Principal, Scope
from serverkit.errors import InvalidInput
from serverkit.timeutil import system_clock

PREFIX_LEN = 8


class ApiKeyBase(SQLModel):
    """The columns of a key table; subclass with ``table=True`` and a ``__tablename__`` of the service's own."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    role: str = Field(max_length=20)
    prefix: str = Field(max_length=16, index=True)
    salt: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    scope: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)  # Scope.to_json(); {} = unrestricted
    created_at: datetime
    revoked_at: datetime | None = None


Key = TypeVar("Key", bound=ApiKeyBase)


def digest(salt: str, token: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + token.encode()).hexdigest()


def store_key(session: Session, model: type[Key], name: str, role: str, token: str,
              scope: Scope | None = None) -> Key:
    """Store a key whose token is known in advance (settings-managed deployments); hashed like any other."""
    if len(token) < PREFIX_LEN:
        raise InvalidInput("key", f"an API key needs at least {PREFIX_LEN} characters")
    salt = secrets.token_hex(16)
    row = model(name=name, role=role, prefix=token[:PREFIX_LEN], salt=salt, hash=digest(salt, token),
                scope=(scope or Scope()).to_json(), created_at=system_clock())
    session.add(row)
    session.flush()
    return row


def create_key(session: Session, model: type[Key], name: str, role: str, scope: Scope | None = None) -> str:
    """Store a new random key and return its token (the only time it exists in clear)."""
    token = secrets.token_urlsafe(32)
    store_key(session, model, name, role, token, scope)
    return token


def revoke_key(session: Session, model: type[Key], name: str) -> int:
    """Revoke every live key of that name; returns how many."""
    rows = list(session.execute(select(model).where(col(model.name) == name, col(model.revoked_at).is_(None)))
                .scalars())
    for row in rows:
        row.revoked_at = system_clock()
        session.add(row)
    return len(rows)


def authenticate(session: Session, model: type[Key], token: str) -> Principal | None:
    """The principal a token stands for, or None for a token nobody issued (or one revoked)."""
    if len(token) < PREFIX_LEN:
        return None
    stmt = select(model).where(col(model.prefix) == token[:PREFIX_LEN], col(model.revoked_at).is_(None))
    for row in session.execute(stmt).scalars():
        if hmac.compare_digest(row.hash, digest(row.salt, token)):
            return Principal(row.name, row.role, Scope.from_json(row.scope or {}))
    return None
