"""The controller's side of authentication beyond the key check itself: browser sessions (POST/DELETE
/api/v1/session, serverkit.session) and which sites a request is about, so that a key scoped to some sites (a grid
operator's, say) is refused every other site (serverkit.auth.Guard.check_sites).

A request is about the site its `site` path or query parameter names; a request that names none is about every
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
    configured = list(request.app.state.settings.sites)
    return configured or None


def install(app: FastAPI) -> None:
    """After the registry is mounted (its key realm is the one the controller's routes check)."""
    guard.scope_sites(app, sites_of)
    app.include_router(session_router(guard))
