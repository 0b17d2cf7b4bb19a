"""The site controller's one client of the national registry, over either transport of `DpcPort`.

- Submissions (sightings mapped from the gateways' samples, applications, allowances) go to the durable outbox
  first and are sent by `drain` (a scheduler job), each with its idempotency key: a registry that is down loses
  nothing, and a resend after a lost answer is applied once.
- Decisions are followed by `follow`: the DPC's feed read by cursor into the mirror (controller/registry_link/
  mirror.py), which the power gate (quota.rights) reads. A registry that is down stops nothing already decided
  (the mirror keeps it, for the trust window); machines it never decided on stay dark.

The transport is chosen by `registry.mode`: `embedded` (the registry runs in this process, on this database:
registry.dpc_port.InProcessDpcPort) or `remote` (HTTP to the national service: transport.HttpDpcPort).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from controller.registry_link.mirror import MirrorStore
from controller.registry_link.models import CommissioningAllowance
from controller.registry_link.outbox import Outbox, OutboxCounts
from controller.registry_link.power import PowerGate
from controller.settings import RegistryLinkSettings
from kuat.wire import v1
from registry.contract import v1 as c
from serverkit.db import SQLITE_BEGIN
from serverkit.errors import InvalidInput

log = logging.getLogger(__name__)

SENDERS = ("sightings", "applications", "allowance")


@dataclass(frozen=True)
class LinkStatus:
    dpc: str
    mode: str
    after: int
    head_seq: int
    synced_at: datetime | None
    trusted_until: datetime | None
    last_error: str | None
    outbox: OutboxCounts
    reachable: bool


class RegistryLink:
    def __init__(self, port: c.DpcPort, engine: Engine, settings: RegistryLinkSettings,
                 now: Callable[[], datetime]) -> None:
        self.port = port
        self.engine = engine
        self.settings = settings
        self.dpc = settings.dpc
        self.now = now
        self.outbox = Outbox(engine, now, settings.retry_min_s, settings.retry_max_s)
        self.mirror = MirrorStore(engine, settings.dpc, now)
        self.gate = PowerGate(self.mirror.load, timedelta(hours=settings.trust_window_h), now)
        self._sync_lock = threading.Lock()
        self.reachable = False

    # ------------------------------------------------------------ submissions (into the outbox)

    def offer_sightings(self, site: str, gateway: str, samples: list[v1.MinerSample], at: datetime) -> str:
        """The SightingsBridge's sink: one outbox item per (site, gateway) flush."""
        from controller.services.sightings import to_sighting

        batch = c.SightingBatch(site=site, sightings=[to_sighting(m, gateway, at) for m in samples], sent_at=at)
        return self.outbox.put("sightings", self.dpc, batch)

    def apply(self, applications: list[c.ApplicationIn]) -> str:
        """Applications (inclusion, a move in, an exclusion), all or nothing at the registry."""
        return self.outbox.put("applications", self.dpc, c.ApplicationBatch(applications=applications))

    def grant_allowance(self, serial: str, device_id: str | None, starts_at: datetime, ends_at: datetime,
                        reason: str, granted_by: str) -> CommissioningAllowance:
        """Record an operator's commissioning allowance (in force here at once) and submit it to the registry."""
        if ends_at <= starts_at:
            raise InvalidInput("ends_at", "must be after starts_at")
        if ends_at - starts_at > timedelta(hours=self.settings.max_allowance_h):
            raise InvalidInput("ends_at", f"an allowance lasts at most {self.settings.max_allowance_h:g} h")
        decision = self.mirror.load()[1].decisions.get(serial)
        if decision is None or decision.status != c.RegistrationStatus.SUBMITTED.value:
            status = decision.status if decision is not None else "not applied for"
            raise InvalidInput("serial", f"{serial} is {status}: an allowance is burn-in for a machine whose "
                                         "inclusion is applied for and not decided yet")
        payload = c.AllowanceIn(serial=serial, starts_at=starts_at, ends_at=ends_at, reason=reason,
                                granted_by=granted_by)  # fmt: skip
        key = self.outbox.put("allowance", self.dpc, payload)
        row = CommissioningAllowance(dpc=self.dpc, serial=serial, device_id=device_id, starts_at=starts_at,
                                     ends_at=ends_at, reason=reason, granted_by=granted_by, created_at=self.now(),
                                     outbox_key=key)  # fmt: skip
        with Session(self.engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})) as s:
            s.add(row)
            s.commit()
            s.refresh(row)
        self.mirror.touch()
        log.info("commissioning allowance for %s (%s) until %s granted by %s: %s", serial, device_id,
                 ends_at.isoformat(), granted_by, reason)
        return row

    # ------------------------------------------------------------ the link's work (scheduler jobs)

    def sync(self) -> tuple[int, int]:
        """Send what is due, then follow the feed to its head. Returns (submissions answered, subjects changed)."""
        with self._sync_lock:
            return self.drain(), self.follow()

    def drain(self, limit: int = 200) -> int:
        done = 0
        for item in self.outbox.due(limit):
            assert item.id is not None
            try:
                result = self._send(item.kind, item.dpc, item.payload, item.idempotency_key)
            except c.PortUnavailable as exc:
                self.reachable = False
                self.outbox.retry_later(item.id, item.attempts + 1, str(exc))
                log.warning("registry unavailable; %s %s kept in the outbox: %s", item.kind, item.idempotency_key,
                            exc)
                break  # the registry is down: the rest waits its turn (order kept)
            except c.PortRefused as exc:
                self.outbox.refused(item.id, exc.status, exc.detail)
                if item.kind == "allowance":
                    self.mirror.touch()  # a refused allowance is void
                log.error("registry refused %s %s for good (%d): %s", item.kind, item.idempotency_key, exc.status,
                          exc.detail)
                done += 1
                continue
            self.reachable = True
            self.outbox.sent(item.id, result)
            if isinstance(result, c.AllowanceOut):
                self._note_allowance(item.idempotency_key, result)
            done += 1
        return done

    def _send(self, kind: str, dpc: str, payload: str, key: str) -> c.SightingReceipt | c.ApplicationReceipt | \
            c.AllowanceOut:
        if kind == "sightings":
            return self.port.submit_sightings(dpc, c.SightingBatch.model_validate_json(payload), key)
        if kind == "applications":
            return self.port.submit_applications(dpc, c.ApplicationBatch.model_validate_json(payload), key)
        if kind == "allowance":
            return self.port.submit_allowance(dpc, c.AllowanceIn.model_validate_json(payload), key)
        raise c.PortRefused(0, f"unknown outbox kind {kind!r}")

    def _note_allowance(self, key: str, out: c.AllowanceOut) -> None:
        from sqlmodel import col, select

        with Session(self.engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})) as s:
            row = s.execute(select(CommissioningAllowance).where(col(CommissioningAllowance.outbox_key) == key)
                            ).scalar_one_or_none()
            if row is not None:
                row.registry_id = out.id
                s.add(row)
                s.commit()
        self.mirror.touch()

    def follow(self, max_pages: int = 1000) -> int:
        """Read the feed from the cursor to its head; every page is applied with its cursor move."""
        changed = 0
        after = self.mirror.cursor().after
        for _ in range(max_pages):
            try:
                page = self.port.feed(self.dpc, after, self.settings.feed_page)
            except c.PortUnavailable as exc:
                self.reachable = False
                self.mirror.failed(str(exc))
                log.warning("registry feed unavailable (decisions from %s kept): %s",
                            self.mirror.cursor().synced_at, exc)
                return changed
            except c.PortRefused as exc:
                self.mirror.failed(f"{exc.status}: {exc.detail}")
                log.error("registry feed refused (%d): %s", exc.status, exc.detail)
                return changed
            self.reachable = True
            changed += self.mirror.apply(page)
            after = page.next_after
            if not page.has_more:
                break
        return changed

    # ------------------------------------------------------------ reads

    def owners(self) -> dict[str, str]:
        """serial -> owner BIN for every machine the registry names an owner of (energy per owner)."""
        return {d.serial: d.owner_bin for d in self.mirror.load()[1].decisions.values() if d.owner_bin}

    def status(self) -> LinkStatus:
        cursor = self.mirror.cursor()
        trusted = cursor.synced_at + timedelta(hours=self.settings.trust_window_h) if cursor.synced_at else None
        return LinkStatus(self.dpc, self.settings.mode, cursor.after, cursor.head_seq, cursor.synced_at, trusted,
                          cursor.last_error, self.outbox.counts(), self.reachable)
