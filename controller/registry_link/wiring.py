"""Builds the registry link from the settings and hooks it into the controller's services: the sightings sink,
the owner map, the quota loop's power gate, and the transport (embedded or remote).

Without a `registry:` section the gate fails closed (only registered machines may mine, REGULATION.md: with no
registry to ask, none is shown to be); `registry: {mode: none_lab}` is the lab's explicit opt-out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from controller.registry_link.client import RegistryLink
from controller.registry_link.transport import HttpDpcPort, read_key
from controller.settings import ControllerSettings, NoRegistryLab, RegistryLinkSettings
from kuat import clock
from kuat.wire import v1
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


NO_REGISTRY = ("no registry configured (settings: registry): NO machine has the right to mine (fail closed: only "
               "registered machines may, REGULATION.md). Configure the link, `registry: {mode: remote, dpc: <DPC "
               "code>, url: <registry URL>, key_file: <dpc key file>}` or `registry: {mode: embedded, dpc: <DPC "
               "code>}`; a lab without a registry sets `registry: {mode: none_lab}` (docs/national.md)")
LAB = ("registry.mode=none_lab: power rights are NOT enforced; every machine without a registry violation may draw "
       "power. A lab set-up, not a lawful production configuration (docs/national.md)")


def announce_registry_policy(settings: ControllerSettings) -> None:
    """The line every start logs when the controller does not take power rights from a registry link."""
    if settings.registry is None:
        log.error(NO_REGISTRY)
    elif isinstance(settings.registry, NoRegistryLab):
        log.warning(LAB)


def no_rights() -> Callable[[str, v1.MinerSample], bool]:
    """The gate without a registry: no machine is shown to be registered, so none has the right to power."""
    return lambda device_id, sample: False


def attach_power_gate(services: Services) -> None:
    """The quota loop gives power only where quota.rights allows (after `attach_quota`): the link's decisions, no
    machine at all without a `registry:` section, or (none_lab) every machine without a violation."""
    if services.quota is None or services.quota.loop is None:
        return
    if services.registry_link is not None:
        services.quota.loop.rights = services.registry_link.gate.gate
    elif services.settings.registry is None:
        services.quota.loop.rights = no_rights


def attach_link_metrics(services: Services) -> None:
    """/metrics: the outbox, the age of the decisions, and how many machines are dark (for alerts)."""
    link = services.registry_link
    if link is None:
        return
    gauges = services.metrics.gauges
    gauges["kuat_registry_outbox_pending"] = lambda: float(link.outbox.counts().pending)
    gauges["kuat_registry_outbox_refused"] = lambda: float(link.outbox.counts().refused)

    def age_s() -> float:
        synced = link.mirror.cursor().synced_at
        return (clock.now() - synced).total_seconds() if synced is not None else float("inf")

    gauges["kuat_registry_decisions_age_seconds"] = age_s
    gauges["kuat_registry_trust_window_seconds"] = lambda: link.settings.trust_window_h * 3600.0
    gauges["kuat_machines_without_power_right"] = lambda: float(link.gate.dark_count())
