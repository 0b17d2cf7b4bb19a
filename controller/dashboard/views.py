"""What the ops dashboard shows, as the JSON that static/app.js consumes: the site snapshot (live totals, the
quota's limit and why, the power history), the fleet table, one machine, the registry's pending machines and
violations, the ledger as CSV.

The quota side (`services.quota`, a controller.quota.service.QuotaService) is optional: without it the snapshot
has no limit and the power history comes from this module's own sampler.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from controller.quota.errors import NotUnderQuota
from controller.runtime import Services
from kuat import clock
from kuat.wire import v1
from serverkit.timeutil import ASTANA

HISTORY_POINTS = 900  # ~30 min of 2 s snapshots


def quota_of(services: Services) -> Any | None:
    """The controller's QuotaService when the quota side runs in this controller, else None."""
    return services.quota


def quota_for(services: Services, site: str | None) -> Any | None:
    """The QuotaService if `site` is under quota control (its limits are set), else None."""
    quota = quota_of(services)
    if quota is None or site is None:
        return None
    try:
        quota.state(site)
    except NotUnderQuota:
        return None
    return quota


def site_name(services: Services) -> str | None:
    """The site the dashboard shows: the first configured one, else the first one seen on the broker."""
    if services.settings.sites:
        return services.settings.sites[0]
    totals = services.fleet.site_totals()
    return totals[0]["site"] if totals else None


@dataclass
class PowerSampler:
    """Site power over time when no quota service keeps the history: one point per snapshot (bounded)."""

    points: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=HISTORY_POINTS))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ts: datetime, power_w: float | None, limit_w: float | None, target_w: float | None) -> None:
        with self.lock:
            if self.points and self.points[-1]["ts"] >= ts.isoformat():
                return
            self.points.append({"ts": ts.isoformat(), "power_w": power_w, "limit_w": limit_w, "target_w": target_w})

    def since(self, start: datetime) -> list[dict[str, Any]]:
        cutoff = start.isoformat()
        with self.lock:
            return [p for p in self.points if p["ts"] >= cutoff]


# ------------------------------------------------------------------ site snapshot


def snapshot(services: Services, sampler: PowerSampler, history_minutes: int = 60) -> dict[str, Any]:
    """Everything the Site and Quota tabs draw, in one object (sent every ~2 s over SSE)."""
    site = site_name(services)
    now = clock.now()
    all_totals = services.fleet.site_totals(site) if site else []
    totals = all_totals[0] if all_totals else None
    status = _quota_status(services, site, now)
    power_w = totals["power_w"] if totals else None
    limit_w = status.get("effective_limit_w")
    sampler.add(now, power_w, limit_w, status.get("target_w"))
    hashrate = totals["hashrate_ths"] if totals else None
    return {
        "ts": now.isoformat(),
        "site": {
            "name": site,
            "power_w": power_w,
            "limit_w": limit_w,
            "target_w": status.get("target_w"),
            "hashrate_ths": hashrate,
            "efficiency_jth": (power_w / hashrate) if power_w and hashrate else None,
            "hour": status.get("hour") or {},
            "states": totals["states"] if totals else {},
            "miners": totals["miners"] if totals else 0,
            "miners_available": totals["miners_available"] if totals else 0,
            "limit_reason": status.get("limit_reason"),
            "gateways": [{"id": g.gateway, "online": g.online, "reason": g.reason}
                         for g in services.live.gateway_list() if site is None or g.site == site],
            "quota": quota_of(services) is not None,
        },
        "history": _with_now(_history(services, sampler, site, now - timedelta(minutes=history_minutes)),
                             {"ts": now.isoformat(), "power_w": power_w, "limit_w": limit_w,
                              "target_w": status.get("target_w")}),
        "quota": {
            "schedule": status.get("schedule", []),
            "emergencies": status.get("emergencies", []),
            "tenants": _named_tenants(services, status.get("tenants", [])),
            "ledger": ledger_rows(services, site, now),
        },
    }  # fmt: skip


def _quota_status(services: Services, site: str | None, now: datetime) -> dict[str, Any]:
    quota = quota_for(services, site)
    if quota is None:
        why = "no quota service in this controller" if quota_of(services) is None else "site not under quota control"
        return {"limit_reason": f"no limit in force ({why})"}
    status: dict[str, Any] = quota.status(site)
    return status


def _with_now(history: list[dict[str, Any]], current: dict[str, Any]) -> list[dict[str, Any]]:
    """The history ends at the live figures, so the chart's line ends where the big number is."""
    if history and str(history[-1]["ts"]) >= current["ts"]:
        return history
    return [*history, current]


def _named_tenants(services: Services, tenants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The quota knows a tenant by its licensee's BIN; the registry knows its name."""
    if not tenants or services.registry is None:
        return tenants
    from registry.models import Licensee

    with services.registry.reading() as session:
        names = dict(session.execute(select(col(Licensee.bin), col(Licensee.name))).all())
    return [{**t, "name": names.get(t["tenant"])} for t in tenants]


def _history(services: Services, sampler: PowerSampler, site: str | None, since: datetime) -> list[dict[str, Any]]:
    quota = quota_for(services, site)
    if quota is None:
        return sampler.since(since)
    return [{**r, "ts": _iso(r["ts"])} for r in quota.history(site, since)]


def ledger_rows(services: Services, site: str | None, now: datetime, hours: int = 24) -> list[dict[str, Any]]:
    """The last `hours` of the quota ledger, newest first ([] when the site is not under quota control)."""
    quota = quota_for(services, site)
    if quota is None:
        return []
    start = (now - timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
    rows: list[dict[str, Any]] = quota.ledger(site, start, now, "hour")
    return [{**r, "hour": _iso(r["hour"])} for r in reversed(rows)]


def ledger_csv(services: Services, site: str | None, now: datetime, hours: int = 24) -> str | None:
    """The quota's own CSV of the last `hours` (None when the site is not under quota control)."""
    quota = quota_for(services, site)
    if quota is None:
        return None
    start = (now - timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
    return with_astana_hours(quota.ledger_csv(site, start, now, "hour"))


def with_astana_hours(text: str) -> str:
    """The quota's ledger CSV (UTC instants with their offset) with the hour's start in Astana time in front, so a
    spreadsheet shows the same hours as the schedule (which is in Astana hours)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return text
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["hour_astana", *rows[0]])
    for row in rows[1:]:
        try:
            local = datetime.fromisoformat(row[0]).astimezone(ASTANA).strftime("%Y-%m-%d %H:%M")
        except (ValueError, IndexError):
            local = ""
        w.writerow([local, *row])
    return out.getvalue()


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


# ------------------------------------------------------------------ fleet


@dataclass
class RegistryIndex:
    """Registration status and rack of each machine by serial and by MAC, re-read at most every `ttl_s`."""

    ttl_s: float = 5.0
    by_serial: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_mac: dict[str, dict[str, Any]] = field(default_factory=dict)
    loaded: float = 0.0

    def refresh(self, registry: Any) -> None:
        if registry is None or time.monotonic() - self.loaded < self.ttl_s:
            return
        from registry.models import Hsc, Licensee

        stmt = select(col(Hsc.serial), col(Hsc.mac), col(Hsc.status), col(Hsc.rack), col(Licensee.name)).outerjoin(
            Licensee, col(Hsc.owner_id) == col(Licensee.id)
        )
        by_serial, by_mac = {}, {}
        with registry.reading() as session:
            for serial, mac, status, rack, owner in session.execute(stmt):
                entry = {"registration": status, "rack": rack, "owner_name": owner}
                by_serial[serial] = entry
                if mac:
                    by_mac[mac.lower()] = entry
        self.by_serial, self.by_mac, self.loaded = by_serial, by_mac, time.monotonic()

    def find(self, serial: str | None, mac: str | None) -> dict[str, Any] | None:
        return (self.by_serial.get(serial) if serial else None) or (self.by_mac.get(mac.lower()) if mac else None)


def fleet_rows(services: Services, index: RegistryIndex) -> list[dict[str, Any]]:
    """One row per miner, flat, for the Fleet table (filtering and sorting happen in the browser)."""
    index.refresh(services.registry)
    now = time.time()
    rows = []
    for d in services.live.device_list():
        if d.kind != "miner":
            continue
        rows.append({**fleet_row(services.fleet.view(d, now), index), **power_columns(services, d)})
    return sorted(rows, key=lambda r: (r.get("rack") or "", r["ip"] or ""))


def power_columns(services: Services, d: Any) -> dict[str, Any]:
    """Why the machine has or has no power (controller/registry_link; without a `registry:` section none has it;
    nothing to say for the lab opt-out, none_lab)."""
    link = services.registry_link
    if link is None and services.settings.registry is None:
        return {"power_right": "no_registry", "power_why": "no registry configured (settings: registry)"}
    if link is None or not isinstance(d.sample, v1.MinerSample):
        return {"power_right": None, "power_why": None}
    known = link.gate.check(d.device_id, d.sample)
    return {"power_right": known.right.reason.value, "power_why": known.right.detail}


def fleet_row(view: dict[str, Any], index: RegistryIndex) -> dict[str, Any]:
    entry = index.find(view.get("serial"), view.get("mac"))
    registration = entry["registration"] if entry else ("unregistered" if view.get("serial") else "no serial")
    state = view.get("state") if view["available"] else "offline"
    pools = view.get("pools") or []
    active = next((p for p in pools if p.get("active")), pools[0] if pools else None)
    placed = view.get("placement") or {}
    return {
        "device_id": view["device_id"], "site": view["site"], "gateway": view["gateway"], "serial": view.get("serial"),
        "ip": view["ip"], "mac": view.get("mac"), "hall": placed.get("hall"),
        "rack": placed.get("rack") or (entry or {}).get("rack"), "slot": placed.get("slot"), "model": view.get("model"),
        "firmware": view.get("firmware"), "state": state, "hashrate_ths": view.get("hashrate_ths"),
        "power_w": view.get("power_w"), "power_source": view.get("power_source"), "temp_c": view.get("temp_c"),
        "pool": active["url"] if active else None, "owner": (entry or {}).get("owner_name") or view["owner"],
        "registration": registration,
    }  # fmt: skip


def device_page(services: Services, index: RegistryIndex, device_id: str, minutes: int = 180) -> dict[str, Any]:
    """One machine: its row, its minute history and its command log (NotFound / Conflict from the fleet)."""
    data = services.fleet.device(device_id, None, minutes)
    index.refresh(services.registry)
    device = {**data["device"], **fleet_row(data["device"], index)}
    history = [{"ts": _iso(r["ts"]), "power_w": r["power_w"], "hashrate_ths": r["hashrate_ths"],
                "temp_c_max": r["temp_c_max"]} for r in data["history"]]  # fmt: skip
    now = {"ts": _iso(device["ts"]), "power_w": device.get("power_w"), "hashrate_ths": device.get("hashrate_ths"),
           "temp_c_max": device.get("temp_c")}  # the chart ends at the live sample
    history = _with_now(history, now) if now["ts"] else history
    commands = [{**c, "ts": _iso(c["ts"])} for c in data["commands"]]
    return {"device": device, "history": history, "commands": commands}


# ------------------------------------------------------------------ registry & compliance


def registry_page(services: Services) -> dict[str, Any]:
    """Owners to approve for, pending registrations, open violations with their evidence."""
    from registry.models import Dpc, Licensee
    from registry.service import HscFilter

    registry = services.registry
    if registry is None:
        return {"owners": [], "dpcs": [], "pending": [], "violations": []}
    pending, _ = registry.list_hscs(HscFilter(status="pending"), limit=1000)
    with registry.reading() as session:
        owners = list(session.execute(select(Licensee).order_by(col(Licensee.id))).scalars())
        dpcs = list(session.execute(select(Dpc).order_by(col(Dpc.id))).scalars())
    return {
        "owners": [{"id": o.id, "name": o.name, "licence": o.licence_number, "subtype": o.subtype} for o in owners],
        "dpcs": [{"id": d.id, "name": d.name} for d in dpcs],
        "pending": [{"serial": h.serial, "model": h.model, "mac": h.mac, "firmware": h.firmware,
                     "location": _location(h), "pools": h.pools, "first_seen": _iso(h.first_seen_at)}
                    for h in pending],
        "violations": [{"id": v.id, "kind": v.kind, "subject": v.serial or f"{v.subject} {v.subject_id}",
                        "device_id": v.device_id, "first_seen": _iso(v.first_seen_at),
                        "last_seen": _iso(v.last_seen_at), "status": v.status, "evidence": _evidence(v.evidence)}
                       for v in registry.violations()],
    }  # fmt: skip


def _location(h: Any) -> str:
    parts = [h.site, h.gateway, h.ip, f"{h.pdu} outlet {h.pdu_outlet}" if h.pdu else None]
    return " · ".join(str(p) for p in parts if p)


def _evidence(evidence: dict[str, Any]) -> str:
    def show(v: Any) -> str:
        return ", ".join(str(x) for x in v) if isinstance(v, list | tuple) else str(v)

    return "; ".join(f"{k}: {show(v)}" for k, v in evidence.items())

