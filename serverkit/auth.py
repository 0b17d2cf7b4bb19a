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
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from serverkit.errors import PermissionDenied, RateLimited, Unauthenticated
from serverkit.ratelimit import FailureLimiter

if TYPE_CHECKING:
    from serverkit.session import SessionSigner

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

COOKIE = "kuat_session"  # the session cookie (serverkit.session)

# Declared on every guarded route so that OpenAPI says how to authenticate (either one); `token_from` reads them.
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey")
BEARER = HTTPBearer(auto_error=False, scheme_name="Bearer")
SESSION_COOKIE = APIKeyCookie(name=COOKIE, auto_error=False, scheme_name="Session",
                              description="set by POST /api/v1/session; only where a route says so")


def token_from(request: Request) -> str | None:
    """The key a request carries: ``Authorization: Bearer`` or ``X-API-Key`` (never the URL)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None


SitesOf = Callable[[Request], "Iterable[str] | None"]  # the sites a request is about
ZoneOf = Callable[[Request, str], "str | None"]  # the trading zone of a site (None: unknown), for zone-scoped keys


def no_zone(request: Request, site: str) -> str | None:
    return None


def site_param(request: Request) -> list[str] | None:
    """The default view of what a request is about: the site its path or query names ([] when none)."""
    site = request.path_params.get("site") or request.query_params.get("site")
    return [str(site)] if site else []


@dataclass
class _Realm:
    """What `Guard.install` keeps on one app for one realm."""

    authenticate: Authenticate
    limiter: FailureLimiter
    sessions: SessionSigner
    sites_of: SitesOf = site_param
    zone_of: ZoneOf = no_zone


class Guard:
    """The keys of one realm (one service's key table) and the dependencies that check them.

    Per app: the authenticator, the failed-authentication limiter (serverkit.ratelimit), the session signer
    (serverkit.session: routes that opt in with `cookie=True` also take the session cookie) and `sites_of`, which
    says which sites a request is about so that a key scoped to some sites is refused the others (None: the request
    spans sites it cannot name, which only an unrestricted key may do).
    """

    def __init__(self, realm: str) -> None:
        self.realm = realm
        self._attr = f"kuat_auth_{realm}"

    def install(self, app: FastAPI, authenticate: Authenticate, *, limiter: FailureLimiter | None = None,
                sessions: SessionSigner | None = None) -> None:  # fmt: skip
        from serverkit.session import SessionSigner

        setattr(app.state, self._attr, _Realm(authenticate, limiter or FailureLimiter(),
                                              sessions or SessionSigner(self.realm)))  # fmt: skip

    def realm_of(self, app: Any) -> _Realm:
        realm: _Realm | None = getattr(app.state, self._attr, None)
        if realm is None:
            raise RuntimeError(f"no authenticator installed for realm {self.realm!r}")
        return realm

    def scope_sites(self, app: FastAPI, sites_of: SitesOf, zone_of: ZoneOf = no_zone) -> None:
        """Say which sites a request to `app` is about (the controller: its `site` parameter, else all its sites)
        and, for keys scoped to zones, which zone a site is in."""
        realm = self.realm_of(app)
        realm.sites_of, realm.zone_of = sites_of, zone_of

    def principal(self, request: Request, cookie: bool = False) -> Principal:
        """The caller, whatever its role: 401 without a valid key (or session, where `cookie`), 429 when this
        client failed too often lately."""
        realm = self.realm_of(request.app)
        client = request.client.host if request.client else "unknown"
        wait = realm.limiter.retry_after(client)
        if wait > 0:
            raise RateLimited(wait, "too many failed authentications from this client")
        token = token_from(request)
        if token is None and cookie and (session := request.cookies.get(COOKIE)):
            found = realm.sessions.verify(session)
            if found is None:
                realm.limiter.failed(client)
                raise Unauthenticated("session expired or not valid: POST /api/v1/session with the key again")
            return found
        if token is None:
            raise Unauthenticated("missing API key (X-API-Key: <key> or Authorization: Bearer <key>)")
        principal = realm.authenticate(token)
        if principal is None:
            realm.limiter.failed(client)
            raise Unauthenticated("unknown or revoked API key")
        return principal

    def check_sites(self, request: Request, principal: Principal) -> None:
        """403 when the key's scope restricts sites and the request is about one outside it (or spans sites)."""
        if principal.scope.sites is None and principal.scope.zones is None:
            return
        realm = self.realm_of(request.app)
        sites = realm.sites_of(request)
        if sites is None:
            raise PermissionDenied(f"key {principal.name} is scoped to some sites; this request spans sites")
        for site in sites:
            principal.require_site(site, realm.zone_of(request, site) if principal.scope.zones is not None else None)

    def require(self, *roles: str, cookie: bool = False) -> Callable[..., Principal]:
        """FastAPI dependency: the caller's `Principal` if its key is valid, of one of `roles`, and scoped to the
        sites the request is about. `cookie=True` (GET routes a browser opens without headers) also takes the
        session cookie. The allowed roles are on the dependency as `.roles` (the contract tests read them)."""
        allowed = frozenset(str(r) for r in roles)

        def check(request: Request) -> Principal:
            principal = self.principal(request, cookie)
            if principal.role not in allowed:
                raise PermissionDenied(f"role {principal.role} may not do this (allowed: {', '.join(sorted(allowed))})")
            self.check_sites(request, principal)
            return principal

        if cookie:
            def dependency(request: Request, _key: str | None = Security(API_KEY_HEADER),
                           _bearer: HTTPAuthorizationCredentials | None = Security(BEARER),
                           _session: str | None = Security(SESSION_COOKIE)) -> Principal:
                return check(request)
        else:
            def dependency(request: Request, _key: str | None = Security(API_KEY_HEADER),  # type: ignore[misc]
                           _bearer: HTTPAuthorizationCredentials | None = Security(BEARER)) -> Principal:
                return check(request)

        dependency.__name__ = f"require_{self.realm}_{'_'.join(sorted(allowed))}"
        dependency.roles = allowed  # type: ignore[attr-defined]
        return dependency
