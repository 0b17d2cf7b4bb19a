"""Builds the registry link from the settings and hooks it into the controller's services: the sightings sink,
the owner map, the quota loop's power gate, and the transport (embedded or remote)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from controller.registry_link.client import RegistryLink
from controller.registry_link.transport import HttpDpcPort, read_key
from controller.settings import RegistryLinkSettings
from kuat import clock
from registry.contract import v1 as c

if TYPE_CHECKING:
    from controller.runtime import Services

log = logging.getLogger(__name__)


def make_port(settings: RegistryLinkSettings, engine: Engine) -> c.DpcPort:
    """The transport: the registry in this process on this database, or the national service over HTTP."""
    if settings.mode == "remote":
        assert settings.url is not None and settings.key_file is not None  # the settings validator says so
        return HttpDpcPort(settings.url, read_key(settings.key_file), settings.timeout_s)
    from registry.dpc_port import InProcessDpcPort
    from serverkit.db import session_factory

    return InProcessDpcPort(session_factory(engine), [settings.dpc], clock=clock.now)


def make_link(settings: RegistryLinkSettings, engine: Engine, port: c.DpcPort | None = None) -> RegistryLink:
    link = RegistryLink(port if port is not None else make_port(settings, engine), engine, settings, clock.now)
    log.info("registry link: %s, DPC %s, decisions trusted %g h after the last read", settings.mode, settings.dpc,
             settings.trust_window_h)
    return link


def attach_power_gate(services: Services) -> None:
    """The quota loop gives power only where quota.rights allows (after `attach_quota`)."""
    link = services.registry_link
    if services.quota is None or services.quota.loop is None:
        return
    if link is None:
        log.warning("no registry link configured (settings: registry): power rights are NOT enforced; every "
                    "machine without a registry violation may draw power (docs/national.md)")
        return
    services.quota.loop.rights = link.gate.gate
