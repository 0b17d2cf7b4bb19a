"""The registry's API keys (table `api_key`) and the roles its routes allow.

Hashing, scopes and the FastAPI dependency are serverkit's (serverkit.keys, serverkit.auth); this module binds them
to the registry's realm: `require_role(*roles)` checks a key against the registry's own table, so a controller's
keys never open the registry and the other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from fastapi import FastAPI, Request
from sqlmodel import Session

from registry.models import ApiKey, Role
from serverkit import keys
from serverkit.auth import Guard, Principal, Scope

PREFIX_LEN = keys.PREFIX_LEN
guard = Guard("registry")


def store_key(session: Session, name: str, role: Role, token: str, scope: Scope | None = None) -> None:
    """Store a key whose token is known in advance (settings-managed deployments); hashed like any other."""
    keys.store_key(session, ApiKey, name, role.value, token, scope)


def create_key(session: Session, name: str, role: Role, scope: Scope | None = None) -> str:
    """Store a new random key and return its token (the only time it exists in clear)."""
    return keys.create_key(session, ApiKey, name, role.value, scope)


def revoke_key(session: Session, name: str) -> int:
    return keys.revoke_key(session, ApiKey, name)


def authenticate(session: Session, token: str) -> Principal | None:
    return keys.authenticate(session, ApiKey, token)


def install(app: FastAPI, sessions: Callable[[], AbstractContextManager[Session]]) -> None:
    """Check this app's registry routes against the key table reached through `sessions`."""

    def check(token: str) -> Principal | None:
        with sessions() as session:
            return authenticate(session, token)

    guard.install(app, check)


def require_role(*roles: Role) -> Callable[[Request], Principal]:
    """FastAPI dependency: the caller's `Principal` if its registry key is valid and of one of `roles`."""
    return guard.require(*roles)


READ = (Role.OPERATOR, Role.REGULATOR)
WRITE = (Role.OPERATOR,)
SUBMIT = (Role.OPERATOR, Role.AGENT)
