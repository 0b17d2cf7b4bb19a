"""The controller's FastAPI application: fleet, gateways, site, commands, the registry's router, health, metrics.

`create_app(settings, services)` only assembles; `kuat controller run` (controller/cli.py) starts ingest, the
scheduler and uvicorn around it. OpenAPI docs are at /docs.
"""

from __future__ import annotations

from fastapi import FastAPI

from controller.api import commands, fleet, health, site
from controller.api import session as api_session
from controller.dashboard import api as dashboard
from controller.runtime import Services
from controller.settings import ControllerSettings
from kuat import __version__


def create_app(settings: ControllerSettings, services: Services) -> FastAPI:
    app = FastAPI(
        title="Kuat controller",
        version=__version__,
        description="Live fleet, gateways, site totals and energy by source, commands, HSC registry, health.",
    )
    app.state.settings = settings
    app.state.services = services
    mount_registry(app, services)
    api_session.install(app)  # browser sessions; which sites a request is about (scoped keys)
    for router in (fleet.router, site.router, commands.router, health.router):
        app.include_router(router)
    if services.quota is not None:
        from controller.quota.api import router as quota_router

        app.include_router(quota_router)
    if services.money is not None:
        from controller.money.api import install as install_money

        install_money(app)
    if services.planner is not None:
        from controller.planner.api import router as planner_router

        app.include_router(planner_router)
    if services.registry_link is not None:
        from controller.registry_link.api import install as install_registry_link

        install_registry_link(app)
    if services.alerts is not None:
        from controller.alerts.api import router as alerts_router

        app.include_router(alerts_router)
    dashboard.install(app)
    return app


def mount_registry(app: FastAPI, services: Services) -> None:
    """The registry's router and error handlers; API keys are checked against its table (registry.auth)."""
    from registry.api import install

    if services.registry is None:
        raise ValueError("the controller's app needs the registry service (API keys live in it)")
    install(app, services.registry)
