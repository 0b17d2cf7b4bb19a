"""The demo's scripted grid day, played against the controller's quota API with the grid operator's key:
the site's limits and the tenant's share, today's hourly schedule (Astana hours), then an emergency cut to 30 %
at a set simulated time, lifted a set time later."""

from __future__ import annotations

import logging
import math
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kuat import clock

if TYPE_CHECKING:
    from demo.cli import Demo

log = logging.getLogger("demo.grid")

# the purchased energy of each Astana hour, as a share of the site's nominal power: a night/day shape with an
# evening peak when the grid sells less to miners
DAY_SHAPE = (0.95, 0.95, 0.95, 0.95, 0.9, 0.85, 0.8, 0.75, 0.75, 0.8, 0.85, 0.85,
             0.85, 0.85, 0.85, 0.8, 0.7, 0.6, 0.55, 0.6, 0.75, 0.85, 0.9, 0.95)  # fmt: skip
EMERGENCY_PCT = 30.0
TENANT_SHARE_PCT = 20.0


class GridError(RuntimeError):
    """The controller refused a step of the scripted grid day."""


def hourly_kwh(nominal_w: float, hours: int = 24) -> list[float]:
    """kWh per hour for a site of `nominal_w` (23 or 25 hours repeat or drop the last hour's share)."""
    shape = list(DAY_SHAPE) + [DAY_SHAPE[-1]] * max(0, hours - len(DAY_SHAPE))
    return [round(nominal_w / 1000 * f, 1) for f in shape[:hours]]


class GridDay:
    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self.site = demo.site_name
        started = clock.now()
        after = demo.opts.emergency_after_min
        self.emergency_at: datetime | None = None if after is None else started + timedelta(minutes=after)
        self.lift_at: datetime | None = None
        if self.emergency_at is not None:
            self.lift_at = self.emergency_at + timedelta(minutes=demo.opts.emergency_minutes)
        self.order_id: Any = None
        self.nominal_w = 0.0
        self.pushed_until: date | None = None  # the last Astana day with a schedule
        self.available = True

    def describe(self) -> str:
        plan = "hourly schedule pushed"
        if self.emergency_at is not None and self.lift_at is not None:
            plan += (f"; emergency cut to {EMERGENCY_PCT:g} % at {_hm(self.emergency_at)} (simulated), lifted at "
                     f"{_hm(self.lift_at)}")  # fmt: skip
        return plan if self.available else "quota API not available in this controller: no grid day"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, role: str = "grid") -> Any:
        with self.demo.client(role) as c:
            r = c.request(method, path, json=body)
        if r.status_code == 503 or (r.status_code == 404 and r.json().get("detail") == "Not Found"):
            self.available = False
            raise GridError(f"{method} {path}: the controller has no quota API ({r.status_code} {r.text[:200]})")
        if r.status_code >= 400:
            raise GridError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def start(self) -> None:
        """Site limits, the tenant's share and today's schedule (tomorrow's too: a fast day runs past midnight)."""
        from demo.cli import sum_nominal_w
        from sim.site import load_site

        nominal_w = self.nominal_w = sum_nominal_w(load_site(self.demo.opts.site_file))
        try:
            self._configure_site(nominal_w)
            self._push_schedules(nominal_w)
        except GridError as exc:
            if self.available:
                raise
            log.warning("%s: the demo runs without quota control", exc)

    def _configure_site(self, nominal_w: float) -> None:
        from demo.seed import TENANT_BIN

        self._limits(math.ceil(nominal_w * 1.1 / 1000), require_schedule=False)  # no 0 W limit before a schedule
        tenant = TENANT_BIN  # the controller knows a machine's owner by its licensee's BIN
        self._call("PUT", f"/api/v1/quota/{self.site}/tenants/{tenant}", {"share_pct": TENANT_SHARE_PCT},
                   role="operator")

    def _limits(self, connection_kw: float, require_schedule: bool) -> None:
        body = {"connection_kw": connection_kw, "reserved_headroom_kw": round(connection_kw * 0.02),
                "require_schedule": require_schedule}  # fmt: skip
        self._call("PUT", f"/api/v1/quota/{self.site}/limits", body, role="operator")

    def _push_schedules(self, nominal_w: float) -> None:
        from quota.timebase import ASTANA

        today = clock.now().astimezone(ASTANA).date()
        for day in (today, today + timedelta(days=1)):
            self._push_schedule(day)
        log.info("grid: schedules for %s and the day after pushed", today)
        self._limits(math.ceil(nominal_w * 1.1 / 1000), require_schedule=True)  # mining only on bought energy

    def _push_schedule(self, day: date) -> None:
        self._call("POST", f"/api/v1/quota/{self.site}/schedules",
                   {"day": day.isoformat(), "hours_kwh": hourly_kwh(self.nominal_w), "reference": f"DA-{day}"})
        self.pushed_until = day

    def tick(self) -> None:
        """Play the emergency order and its lifting when their simulated time comes; keep a day of schedule ahead."""
        from quota.timebase import ASTANA

        if not self.available:
            return
        now = clock.now()
        tomorrow = now.astimezone(ASTANA).date() + timedelta(days=1)
        if self.pushed_until is not None and self.pushed_until < tomorrow:
            self._push_schedule(tomorrow)
            log.info("grid: day-ahead schedule for %s pushed", tomorrow)
        if self.emergency_at is not None and now >= self.emergency_at:
            self.emergency_at = None
            order = self._call("POST", f"/api/v1/quota/{self.site}/emergencies",
                               {"cap_pct": EMERGENCY_PCT, "reference": "KEGOC-DEMO-1"})
            self.order_id = (order or {}).get("id")
            log.info("grid: emergency order KEGOC-DEMO-1, cut to %g %% (order %s)", EMERGENCY_PCT, self.order_id)
        elif self.lift_at is not None and self.emergency_at is None and now >= self.lift_at:
            self.lift_at = None
            if self.order_id is not None:
                self._call("POST", f"/api/v1/quota/emergencies/{self.order_id}/lift")
                log.info("grid: emergency order KEGOC-DEMO-1 lifted")


def _hm(t: datetime) -> str:
    return t.astimezone().strftime("%H:%M")
