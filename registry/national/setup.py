"""Keys of the national registry's roles, for deployments, the demo and tests: a `dpc` key is bound to DPC codes
through its scope (serverkit.auth.Scope.dpcs); authority and regulator keys are unrestricted."""

from __future__ import annotations

from collections.abc import Iterable

from registry import auth
from registry.models import Role
from serverkit.auth import Scope
from serverkit.db import SessionFactory
from serverkit.errors import InvalidInput


def create_key(sessions: SessionFactory, name: str, role: Role, dpc_codes: Iterable[str] | None = None) -> str:
    """A new key (its token returned once); `dpc_codes` binds a `dpc` key to those DPCs."""
    if role == Role.DPC and dpc_codes is None:
        raise InvalidInput("dpc_codes", "a dpc key needs the DPC codes it is bound to")
    scope = Scope.of(dpcs=dpc_codes) if dpc_codes is not None else None
    with sessions() as session, session.begin():
        return auth.create_key(session, name, role, scope)


def bind_dpc_key(sessions: SessionFactory, name: str, dpc_codes: Iterable[str]) -> str:
    return create_key(sessions, name, Role.DPC, list(dpc_codes))
