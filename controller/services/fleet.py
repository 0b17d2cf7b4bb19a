"""Read side: the live fleet (filter, sort, search), one device with its recent history, site totals and energy
by device / owner / site / source. Shared by the API routes; the quota loop will read the same figures."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from sqlalchemy import Engine

from controller import history
from controller.history import RollupBook, as_datetime
from controller.live import DeviceLive, LiveState
from controller.services.commands import CommandService
from controller.settings import ControllerSettings, EnergySource
from kuat import clock
from kuat.wire import v1
from money.timebase import astana_date
from serverkit.errors import Conflict, NotFound

EnergyGroup = Literal["device", "owner", "site", "source"]
GROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "device": ("site", "device_id", "source"),
    "owner": ("owner", "source"),
    "site": ("site", "source"),
    "source": ("source",),
}
SortKey = Literal["device_id", "power_w", "hashrate_ths", "temp_c", "state", "model", "ip", "gateway"]
SORT_KEYS: tuple[str, ...] = get_args(SortKey)


class FleetService:
    def __init__(
        self, settings: ControllerSettings, live: LiveState, book: RollupBook, engine: Engine, commands: CommandService
    ) -> None:
        self.settings = settings
        self.live = live
        self.book = book
        self.engine = engine
        self.commands = commands

    # ------------------------------------------------------------ devices

    def available(self, d: DeviceLive, now: float) -> bool:
        gw = self.live.gateways.get((d.site, d.gateway))
        fresh = now - d.received <= self.settings.device_stale_s
        return bool(d.sample.available and fresh and gw is not None and gw.online)

    def view(self, d: DeviceLive, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        s = d.sample
        out: dict[str, Any] = {
            "site": d.site, "gateway": d.gateway, "device_id": d.device_id, "kind": d.kind, "ip": s.ip,
            "available": self.available(d, now), "reported_available": s.available, "ts": d.ts,
            "age_s": round(now - d.received, 1), "owner": d.owner, "energy_source": d.source,
            "model": s.model, "serial": s.serial, "power_w": s.power_w,
        }  # fmt: skip
        if isinstance(s, v1.MinerSample):
            out.update(
                state=s.state.value, make=s.make, firmware=s.firmware, mac=s.mac, hostname=s.hostname,
                hashrate_ths=s.hashrate_ths, nominal_ths=s.nominal_ths, power_source=s.power_source.value,
                power_limit_w=s.power_limit_w, temp_c=s.temp_c, errors=s.errors,
                pools=[p.model_dump(mode="json") for p in s.pools],
                outlet=s.outlet.model_dump(mode="json") if s.outlet else None,
                placement=s.placement.model_dump(mode="json") if s.placement else None,
            )  # fmt: skip
        else:
            out.update(state="online" if s.available else "offline", family=s.family, energy_kwh=s.energy_kwh,
                       outlets=[o.model_dump(mode="json") for o in s.outlets])  # fmt: skip
        return out

    def devices(
        self,
        site: str | None = None,
        gateway: str | None = None,
        kind: str | None = None,
        state: str | None = None,
        search: str | None = None,
        sort: str = "device_id",
        descending: bool = False,
        limit: int = 500,
        offset: int = 0,
    ) -> dict[str, Any]:
        if sort not in SORT_KEYS:
            raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}")
        now = time.time()
        found = [d for d in self.live.device_list() if _matches(d, site, gateway, kind, state, search)]
        found.sort(key=lambda d: _sort_key(_field(d, sort)), reverse=descending)
        page = found[offset : offset + limit]  # views (dicts) only for the page: a site can have 100k devices
        return {"total": len(found), "offset": offset, "devices": [self.view(d, now) for d in page]}

    def device(self, device_id: str, site: str | None = None, history_minutes: int = 180) -> dict[str, Any]:
        found = self.live.find(device_id, site)
        if not found:
            raise NotFound("live device", device_id)
        if len(found) > 1:
            raise Conflict(f"device {device_id!r} is on several sites; add ?site=")
        d = found[0]
        since = clock.now() - timedelta(minutes=history_minutes)
        rows = history.device_history(self.engine, d.site, d.device_id, since)
        rows += self._pending_rows(d.site, d.device_id)
        return {
            "device": self.view(d),
            "history": [_history_row(r) for r in rows],
            "commands": [r.view() for r in self.commands.for_device(device_id)],
        }

    def _pending_rows(self, site: str, device_id: str) -> list[dict[str, Any]]:
        out = []
        for (s, dev, minute), b in self.book.snapshot():
            if s == site and dev == device_id:
                out.append({"minute": as_datetime(minute), **{k: getattr(b, k) for k in b.__slots__}})
        return sorted(out, key=lambda r: r["minute"])

    # ------------------------------------------------------------ site

    def site_totals(self, site: str | None = None) -> list[dict[str, Any]]:
        """Live totals per site: power per energy source and per power-figure source, hash rate, device counts."""
        now = time.time()
        sites: dict[str, dict[str, Any]] = {}
        for d in self.live.device_list():
            if site is not None and d.site != site:
                continue
            t = sites.setdefault(d.site, _empty_totals(d.site))
            if d.kind == "pdu":
                t["pdus"] += 1
                continue
            s = d.sample
            assert isinstance(s, v1.MinerSample)
            available = self.available(d, now)
            t["miners"] += 1
            t["miners_available"] += available
            t["states"][s.state.value] = t["states"].get(s.state.value, 0) + 1
            if available and s.power_w is not None:
                t["power_w"] += s.power_w
                t["power_w_by_source"][d.source] += s.power_w
                by_figure = t["power_w_by_figure"]
                by_figure[s.power_source.value] = by_figure.get(s.power_source.value, 0.0) + s.power_w
            if available and s.hashrate_ths is not None:
                t["hashrate_ths"] += s.hashrate_ths
        return [sites[k] for k in sorted(sites)]

    def energy(
        self,
        group: EnergyGroup = "source",
        site: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """kWh from the day ledger plus the minutes still in memory (whole Astana days); gap_s = time not
        integrated."""
        cols = GROUP_COLUMNS[group]
        totals: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
        for row in history.energy_rows(self.engine, cols, site, since, until, group != "device"):
            acc = totals[tuple(row[:-2])]
            acc[0] += row[-2] or 0.0
            acc[1] += row[-1] or 0.0
        for (s, dev, minute), b in self.book.snapshot():
            if b.kind != "miner" and group != "device":
                continue
            if (site is not None and s != site) or not _in_range(minute, since, until):
                continue
            values = {"site": s, "device_id": dev, "owner": b.owner, "source": b.source}
            acc = totals[tuple(values[c] for c in cols)]
            acc[0] += b.energy_kwh
            acc[1] += b.gap_s
        return [
            {**dict(zip(cols, key, strict=True)), "energy_kwh": round(v[0], 6), "gap_s": round(v[1], 1)}
            for key, v in sorted(totals.items(), key=lambda kv: tuple(str(x) for x in kv[0]))
        ]

    def site_series(self, site: str, minutes: int = 180) -> list[dict[str, Any]]:
        since = clock.now() - timedelta(minutes=minutes)
        return [{**r, "minute": _utc(r["minute"])} for r in history.site_series(self.engine, site, since)]


def _empty_totals(site: str) -> dict[str, Any]:
    return {
        "site": site, "miners": 0, "miners_available": 0, "pdus": 0, "power_w": 0.0, "hashrate_ths": 0.0,
        "power_w_by_source": {s.value: 0.0 for s in EnergySource}, "power_w_by_figure": {}, "states": {},
    }  # fmt: skip


def _field(d: DeviceLive, name: str) -> Any:
    """A device's value for sorting and filtering, without building its whole view."""
    if name in ("device_id", "gateway", "site", "kind", "owner"):
        return getattr(d, name)
    if name == "state":
        s = d.sample
        return s.state.value if isinstance(s, v1.MinerSample) else ("online" if s.available else "offline")
    return getattr(d.sample, name, None)


def _matches(
    d: DeviceLive, site: str | None, gateway: str | None, kind: str | None, state: str | None, search: str | None
) -> bool:
    if (site and d.site != site) or (gateway and d.gateway != gateway) or (kind and d.kind != kind):
        return False
    if state and _field(d, "state") != state:
        return False
    if search:
        needle = search.lower()
        s = d.sample
        hay = (d.device_id, s.ip, s.serial, s.model, getattr(s, "mac", None), getattr(s, "hostname", None), d.owner)
        return any(needle in str(h).lower() for h in hay if h)
    return True


def _sort_key(value: Any) -> tuple[int, Any]:
    """Missing values last; numbers and strings never compared with each other."""
    if value is None:
        return (2, 0)
    return (0, value) if isinstance(value, int | float) else (1, str(value))


def _in_range(minute: int, since: datetime | None, until: datetime | None) -> bool:
    """Whole Astana days, as the day ledger counts them."""
    day = astana_date(as_datetime(minute))
    return (since is None or day >= astana_date(_utc(since))) and (until is None or day < astana_date(_utc(until)))


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _history_row(r: dict[str, Any]) -> dict[str, Any]:
    """A minute row as the API shows it: averages instead of sums."""
    ps, hs = r["power_samples"], r["hashrate_samples"]
    return {
        "ts": _utc(r["minute"]), "samples": r["samples"], "available_samples": r["available_samples"],
        "power_w": r["power_w_sum"] / ps if ps else None, "power_w_max": r["power_w_max"],
        "hashrate_ths": r["hashrate_ths_sum"] / hs if hs else None, "temp_c_max": r["temp_c_max"],
        "energy_kwh": r["energy_kwh"], "gap_s": r["gap_s"],
    }  # fmt: skip
