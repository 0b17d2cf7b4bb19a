"""The registry as its own process (serving many sites). The controller normally mounts the same router instead."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from registry.api import install
from registry.db import init_db
from registry.national import api as national_api
from registry.national import api_dpc, web
from registry.national.service import NationalRegistry
from registry.national.sightings import close_unseen
from registry.national.signing import Signer
from registry.schemas import RegistryHealth
from registry.service import RegistryService
from registry.settings import RegistrySettings
from serverkit.db import make_engine, session_factory

log = logging.getLogger(__name__)


def build_service(settings: RegistrySettings) -> RegistryService:
    engine = make_engine(settings.database_url)
    init_db(engine)
    return RegistryService(session_factory(engine), missing_after=timedelta(days=settings.missing_after_days),
                           fresh_for=timedelta(minutes=settings.fresh_minutes))


async def _compliance_loop(service: RegistryService, nat: NationalRegistry, settings: RegistrySettings) -> None:
    while True:
        await asyncio.sleep(settings.compliance_interval_s)
        try:
            closed = await asyncio.to_thread(close_unseen, nat, nat.now())
            if closed:
                log.info("closed %d violation episodes of machines no DPC reports any more", closed)
            result = await asyncio.to_thread(service.check_compliance)
            log.info("compliance check: %d machines, %d opened, %d resolved, open %s", result.hscs_checked,
                     result.opened, result.resolved, result.open_by_kind)
            await asyncio.to_thread(service.prune_idempotency_keys, timedelta(days=settings.idempotency_keep_days))
        except Exception:  # keep checking: one failed round must not stop compliance for good
            log.exception("compliance check failed")


def national_for(service: RegistryService, settings: RegistrySettings) -> NationalRegistry:
    """The national registry on the same database (and clock) as the reference service."""
    return NationalRegistry(service._sessions, service._clock,
                            fresh_for=timedelta(minutes=settings.fresh_minutes))


def _signer(settings: RegistrySettings) -> Signer:
    if settings.signing_key_file:
        return Signer.from_file(Path(settings.signing_key_file))
    log.warning("no KUAT_REGISTRY_SIGNING_KEY_FILE: the audit head is signed with a key that dies with this process")
    return Signer(Ed25519PrivateKey.generate())


def create_app(settings: RegistrySettings | None = None, service: RegistryService | None = None,
               national: NationalRegistry | None = None) -> FastAPI:
    settings = settings or RegistrySettings()
    svc = service or build_service(settings)
    nat = national or national_for(svc, settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = None
        if settings.compliance_interval_s > 0:
            task = asyncio.create_task(_compliance_loop(svc, nat, settings))
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="Kuat HSC registry", version="1", lifespan=lifespan,
                  description="State registry of hardware-software complexes (mining machines), compliance, audit.")
    install(app, svc)
    app.state.national_registry = nat
    app.include_router(api_dpc.router)
    national_api.install(app, _signer(settings))
    web.install(app)

    @app.get("/healthz", tags=["ops"], response_model=RegistryHealth)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
