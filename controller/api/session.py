"""The controller's side of authentication beyond the key check itself: browser sessions (POST/DELETE
/api/v1/session, serverkit.session) and which sites a request is about, so that a key scoped to some sites (a grid
operator's, say) is refused every other site (serverkit.auth.Guard.check_sites).

A request is about the site its `site` path or query parameter names (lifting an emergency order: the order's site;
a zone-scoped key reaches a site by the zone the quota side knows for it); a request that names none is about every
site this controller serves (its configured `sites`), and when it serves "every site on the broker" (no `sites`
configured) only an unrestricted key may make it.
"""

from __future__ import annotations

from fastapi import FastAPI, Request

from registry.auth import guard
from serverkit.auth import site_param
from serverkit.session import session_router


def sites_of(request: Request) -> list[str] | None:
    named = site_param(request)
    if named:
        return named
    order = request.path_params.get("order_id")
    if order is not None and request.url.path.startswith("/api/v1/quota/emergencies/"):
        site = _order_site(request, order)  # lifting an order is about the order's site
        return [site] if site is not None else None  # no such order: 403 to a scoped key, else the route's 404
    configured = list(request.app.state.settings.sites)
    return configured or None


def _order_site(request: Request, order: object) -> str | None:
    quota = request.app.state.services.quota
    try:
        return None if quota is None else quota.emergency_site(int(str(order)))
    except (ValueError, OverflowError):  # not an id: the route's own validation answers 422
        return None


def zone_of(request: Request, site: str) -> str | None:
    """The trading zone the quota side knows for `site` (None: not under quota control yet)."""
    from controller.quota.errors import NotUnderQuota

    quota = request.app.state.services.quota
    if quota is None:
        return None
    try:
        zone: str | None = quota.state(site).site.zone
    except NotUnderQuota:
        return None
    return zone


def install(app: FastAPI) -> None:
    """After the registry is mounted (its key realm is the one the controller's routes check)."""
    guard.scope_sites(app, sites_of, zone_of)
    app.include_router(session_router(guard))
