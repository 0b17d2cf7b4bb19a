"""Who is calling, and the FastAPI dependency that checks it: principals with a role and a scope, one guard per realm.

A service has a realm (its key table): the controller's keys do not open the registry, and the other way round, even
when an embedded registry is mounted in the controller's app. `Guard(realm).install(app, authenticate)` puts the
realm's authenticator on the app; `guard.require(*roles)` is the dependency each route declares. Clients send the key
as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

Missing or unknown key -> `Unauthenticated` (401); a known key of a role the route does not allow, or whose scope does
not reach what it asks for -> `PermissionDenied` (403). Both map to HTTP through serverkit.errors.

A scope narrows a role: a grid key to some sites or trading zones, a tenant's key to its own licensee, a DPC's key
to the DPCs it is bound to. A dimension that is `None` is not restricted; an empty set reaches nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from serverkit.errors import PermissionDenied, Unauthenticated

SCOPE_DIMENSIONS = ("sites", "zones", "dpcs", "licensees")


def _frozen(values: Iterable[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(str(v) for v in values)


@dataclass(frozen=True)
class Scope:
    """What a key reaches beyond its role; `None` on a dimension means unrestricted there."""

    sites: frozenset[str] | None = None
    zones: frozenset[str] | None = None
    dpcs: frozenset[str] | None = None
    licensees: frozenset[str] | None = None

    @classmethod
    def of(cls, *, sites: Iterable[str] | None = None, zones: Iterable[str] | None = None,
           dpcs: Iterable[str] | None = None, licensees: Iterable[str] | None = None) -> Scope:
        return cls(_frozen(sites), _frozen(zones), _frozen(dpcs), _frozen(licensees))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scope:
        unknown = set(data) - set(SCOPE_DIMENSIONS)
        if unknown:
            raise ValueError(f"unknown scope dimension(s): {', '.join(sorted(unknown))}")
        return cls.of(**{k: data.get(k) for k in SCOPE_DIMENSIONS})

    def to_json(self) -> dict[str, list[str]]:
        return {k: sorted(v) for k in SCOPE_DIMENSIONS if (v := getattr(self, k)) is not None}

    @property
    def unrestricted(self) -> bool:
        return all(getattr(self, k) is None for k in SCOPE_DIMENSIONS)

    def reaches_site(self, site: str, zone: str | None = None) -> bool:
        """A site is reached when neither sites nor zones restrict, or it is listed, or its zone is."""
        if self.sites is None and self.zones is None:
            return True
        return (self.sites is not None and site in self.sites) or \
            (zone is not None and self.zones is not None and zone in self.zones)

    def reaches_dpc(self, dpc: str) -> bool:
        return self.dpcs is None or dpc in self.dpcs

    def reaches_licensee(self, bin_: str) -> bool:
        return self.licensees is None or bin_ in self.licensees


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (the actor in audit events), its role and its scope."""

    name: str
    role: str
    scope: Scope = field(default_factory=Scope)

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.name}"

    def require_site(self, site: str, zone: str | None = None) -> None:
        if not self.scope.reaches_site(site, zone):
            raise PermissionDenied(f"key {self.name} ({self.role}) is not scoped to site {site}")

    def require_dpc(self, dpc: str) -> None:
        if not self.scope.reaches_dpc(dpc):
            raise PermissionDenied(f"key {self.name} ({self.role}) is not bound to DPC {dpc}")

    def require_licensee(self, bin_: str) -> None:
        if not self.scope.reaches_licensee(bin_):
            raise PermissionDenied(f"key {self.name} ({self.role}) may not see licensee {bin_}")


Authenticate = Callable[[str], Principal | None]

# Declared on every guarded route so that OpenAPI says how to authenticate (either one); `token_from` reads them.
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey")
BEARER = HTTPBearer(auto_error=False, scheme_name="Bearer")


def token_from(request: Request) -> str | None:
    """The key a request carries: ``Authorization: Bearer`` or ``X-API-Key`` (never the URL)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


class Guard:
    """The keys of one realm (one service's key table) and the dependencies that check them."""

    def __init__(self, realm: str) -> None:
        self.realm = realm
        self._attr = f"kuat_auth_{realm}"

    def install(self, app: FastAPI, authenticate: Authenticate) -> None:
        setattr(app.state, self._attr, authenticate)

    def principal(self, request: Request) -> Principal:
        """The caller, whatever its role (401 when there is no valid key)."""
        authenticate: Authenticate | None = getattr(request.app.state, self._attr, None)
        if authenticate is None:
            raise RuntimeError(f"no authenticator installed for realm {self.realm!r}")
        token = token_from(request)
        if token is None:
            raise Unauthenticated("missing API key (Authorization: Bearer <key>)")
        principal = authenticate(token)
        if principal is None:
            raise Unauthenticated("unknown or revoked API key")
        return principal

    def require(self, *roles: str) -> Callable[[Request], Principal]:
        """FastAPI dependency: the caller's `Principal` if its key is valid and of one of `roles`."""
        allowed = frozenset(str(r) for r in roles)

        def dependency(request: Request, _key: str | None = Security(API_KEY_HEADER),
                       _bearer: HTTPAuthorizationCredentials | None = Security(BEARER)) -> Principal:
            principal = self.principal(request)
            if principal.role not in allowed:
                raise PermissionDenied(f"role {principal.role} may not do this (allowed: {', '.join(sorted(allowed))})")
            return principal

        dependency.__name__ = f"require_{self.realm}_{'_'.join(sorted(allowed))}"
        return dependency
