"""A simulated grid day, in process: the quota engine drives a simulated site through a real-shaped schedule.

The plant is sim.runtime.Site on a ManualClock (PDU-metered power, real wake/boot/ramp times, Whatsminer
reboots on a new power limit). Every `--control` seconds, and at once when an emergency order arrives or is
lifted, the loop does what the controller will do: measure, take the dispatch limit (energy pace of the hour,
emergency orders, connection), run the three-band rule, allocate, and send the setpoints that changed.

It prints, per hour: purchased kWh, what the limits allowed, what was used, kWh above purchased, and hash rate
against the bound (the relaxation bound at the best flat power the hour's energy and caps allow), then the
excursions above instantaneous caps.

Run:  .venv/bin/python bench/quota_day.py                      (container-1000 site, 24 h, ~ a few minutes)
      .venv/bin/python bench/quota_day.py --site sim/sites/small.toml --hours 6
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import numpy as np

from controller.settings import QuotaSettings
from kuat.catalog import power_at_ratio
from quota.allocate import Allocation, Mode, Policy, allocate
from quota.control import Bands, LoopState, PowerReading, band_step, dispatch_limit, site_power
from quota.fleet import FleetArrays, Machine, Now
from quota.ledger import Allotment, CapWindow, Excursion, PowerSample, energy_excursions, excursions, ledger_rows
from quota.limits import (
    DaySchedule,
    EmergencyOrder,
    QuotaState,
    SiteConfig,
    Source,
    accept_orders,
    accept_schedule,
    lift_order,
    plan_segments,
)
from quota.timebase import ASTANA, hour_window
from sim.clock import ManualClock
from sim.physics import Phase
from sim.runtime import SimMiner, SimOutlet, Site
from sim.site import load_site

ROOT = Path(__file__).resolve().parents[1]
# share of the site's full power bought per Astana hour 1..24: winter surplus at night, little at the evening peak
PROFILE = [0.95, 0.95, 0.95, 0.95, 0.93, 0.90, 0.80, 0.62, 0.50, 0.55, 0.60, 0.66,
           0.70, 0.70, 0.66, 0.60, 0.50, 0.36, 0.30, 0.34, 0.50, 0.70, 0.85, 0.92]


@dataclass(frozen=True)
class Cut:
    """An emergency order as it arrives: pushed at `start` (effective immediately); `lift` lifts it by hand."""

    reference: str
    start: time  # Astana local
    end: time | None
    share_pct: float | None = None
    cap_mw: float | None = None
    lift: time | None = None


CUTS = [
    Cut("KEGOC-ORD-0412", time(10, 20), time(12, 40), share_pct=30.0),
    Cut("KEGOC-ORD-0413", time(18, 10), None, share_pct=0.0, lift=time(18, 55)),
]


@dataclass
class HourOutcome:
    hour: int
    purchased_kwh: float
    allowed_kwh: float
    used_kwh: float
    hash_thh: float
    bound_thh: float
    cut: bool = False  # an emergency order was in force during the hour
    bound_at_used_thh: float = 0.0  # the bound for the energy actually used: isolates allocation and churn losses

    @property
    def over_kwh(self) -> float:
        return max(0.0, self.used_kwh - self.purchased_kwh)


@dataclass
class DayResult:
    hours: list[HourOutcome]
    excursions: list[Excursion]
    energy_excursions: list[Excursion]
    dispatches: int
    commands: int
    reboots: int = 0
    wakes: int = 0
    sleeps: int = 0
    actions: dict[str, int] = field(default_factory=dict)
    correction: float = 1.0


# ---------------------------------------------------------------- the plant (simulated site)


class Plant:
    """The simulated site seen through what a controller can know and do."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.miners = site.miners
        outlets: dict[str, SimOutlet] = {}
        for pdu in site.pdus:
            for o in pdu.outlets:
                if o.miner is not None:
                    outlets[o.miner.serial] = o
        self.outlets = outlets
        self.changed_at = {m.serial: -1e9 for m in self.miners}
        self.sent: dict[str, tuple[int, float]] = {}
        self.commands = 0
        self.reboots = 0
        self.wakes = 0
        self.sleeps = 0
        # observed efficiency: measured W and TH/s against the model at the same state (all mining at full now)
        self.power_factor = {m.serial: m.phys.power_w() / power_at_ratio(m.phys.spec, 1.0) for m in self.miners}
        self.hash_factor = {m.serial: m.phys.hashrate_ths() / m.phys.spec.nominal_ths for m in self.miners}

    def machine(self, m: SimMiner, now: float) -> Machine:
        fw = m.d.firmware
        phase = m.phys.phase()
        state = Now.OFF if phase == Phase.OFF else (
            Now.SLEEPING if phase in (Phase.SLEEPING, Phase.FALLING_ASLEEP) else Now.RUNNING)
        caps: dict[str, object] = {"presets": (1.0, 0.75)} if fw == "bmminer" else {"power_target": True}
        return Machine(
            m.serial, m.phys.spec, owner=m.d.owner, outlet_switchable=True,
            power_factor=self.power_factor[m.serial], hash_factor=self.hash_factor[m.serial],
            now=state, since_change_s=now - self.changed_at[m.serial], current_power_w=m.phys.power_limit_w,
            reboots_on_power_change=fw == "btminer", **caps,  # type: ignore[arg-type]
        )

    def machines(self, now: float) -> list[Machine]:
        return [self.machine(m, now) for m in self.miners]

    def settled(self) -> bool:
        moving = (Phase.BOOTING, Phase.RAMPING, Phase.FALLING_ASLEEP)
        return not any(m.phys.phase() in moving for m in self.miners)

    def apply(self, plan: Allocation, now: float) -> None:
        for i, m in enumerate(self.miners):
            mode, watts, ratio = Mode(int(plan.mode[i])), float(plan.power_w[i]), float(plan.ratio[i])
            key = (int(mode), round(watts))
            if self.sent.get(m.serial) == key:
                continue
            self.sent[m.serial] = key
            self.commands += 1
            self._send(m, mode, watts, ratio, now)

    def _send(self, m: SimMiner, mode: Mode, watts: float, ratio: float, now: float) -> None:
        outlet, phys = self.outlets[m.serial], m.phys
        running = phys.phase() not in (Phase.OFF, Phase.SLEEPING, Phase.FALLING_ASLEEP)
        if mode == Mode.OUTLET_OFF:
            if outlet.on:
                outlet.switch(False)
                self.changed_at[m.serial] = now
            return
        if mode == Mode.SLEEP:
            if running:
                phys.sleep()
                self.sleeps += 1
                self.changed_at[m.serial] = now
            return
        if not outlet.on:
            outlet.switch(True)
            self.changed_at[m.serial] = now
        elif not running:
            phys.wake()
            self.wakes += 1
            self.changed_at[m.serial] = now
        reboots = m.d.firmware == "btminer"
        if mode == Mode.RUN:
            if phys.power_limit_w is not None:
                phys.set_power_limit(None, reboot=reboots)
                self.reboots += reboots
            phys.set_ratio(1.0)
        elif mode == Mode.POWER_TARGET:
            if phys.power_limit_w is None or abs(phys.power_limit_w - watts) > 1:
                phys.set_power_limit(watts, reboot=reboots)
                self.reboots += reboots
        else:
            phys.set_ratio(ratio)


# ---------------------------------------------------------------- the day


def _local(day: date, t: time) -> datetime:
    return datetime.combine(day, t, tzinfo=ASTANA).astimezone(UTC)


def _orders(day: date, cuts: list[Cut]) -> list[tuple[datetime, EmergencyOrder, datetime | None]]:
    out = []
    for c in cuts:
        end = None if c.end is None else _local(day, c.end)
        order = EmergencyOrder("sim", c.reference, _local(day, c.start), end, c.cap_mw, c.share_pct)
        out.append((order.start, order, None if c.lift is None else _local(day, c.lift)))
    return out


def _bound_curve(fleet: FleetArrays, full_w: float) -> tuple[np.ndarray, np.ndarray]:
    levels = np.linspace(0.0, full_w, 81)
    return levels, np.array([allocate(fleet, float(p)).bound_ths for p in levels])


def _hour_bound(curve: tuple[np.ndarray, np.ndarray], caps: list[tuple[float, float]], kwh: float) -> float:
    """TH x h of the best flat power the hour's energy allows under its caps (water filling); hash(power) is
    concave, so flat is best."""
    levels, ths = curve
    total_s = sum(s for _, s in caps)
    lo, hi = 0.0, max(c for c, _ in caps)
    if sum(c * s for c, s in caps) / 3.6e6 > kwh:
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if sum(min(c, mid) * s for c, s in caps) / 3.6e6 <= kwh else (lo, mid)
    level = hi if sum(c * s for c, s in caps) / 3.6e6 <= kwh else lo
    del total_s
    return sum(float(np.interp(min(c, level), levels, ths)) * s for c, s in caps) / 3600.0


def run_day(site_path: Path, day: date, hours: int = 24, step_s: float = 5.0, control_s: float = 15.0,
            lag_s: float = 30.0, cuts: list[Cut] | None = None, net: int | None = None,
            profile: list[float] | None = None, policy: Policy | None = None) -> DayResult:
    net = net if net is not None else random.randint(20, 250)
    site_file = load_site(site_path, miner_net=f"127.{net}", pdu_net=f"127.{(net + 1) % 256}")
    t0 = hour_window(day, 1)[0]
    clock = ManualClock(t0.timestamp())
    site = Site(site_file, clock)
    plant = Plant(site)
    fleet0 = FleetArrays.from_machines(plant.machines(clock.now()))
    full_w = float(fleet0.max_power.sum())
    shares = profile or PROFILE
    schedule = DaySchedule.from_kwh("sim", day, [round(full_w * s / 1000.0, 1) for s in shares], "KOREM-DA")
    cfg = SiteConfig("sim", connection_kw=round(full_w * 1.05 / 1000.0, 1), zone="north-south")
    state, _ = accept_schedule(QuotaState(cfg), schedule, t0 - timedelta(hours=10))
    policy = policy or Policy(max_wake_w=0.1 * full_w, min_on_s=300, min_off_s=120)
    bands, loop = Bands(), LoopState()
    pending = _orders(day, cuts if cuts is not None else CUTS)
    lifts: list[tuple[datetime, str]] = []
    end = t0 + timedelta(hours=hours)
    t = t0
    hour_e0, hour_idx = site.energy_wh(), 0
    used_by_hour: list[float] = []
    samples = [PowerSample(t, site.power_w())]
    hash_ws = [0.0] * hours
    next_control, last_dispatch, planned_w, dispatches = t, t - timedelta(hours=1), full_w, 0
    actions: dict[str, int] = {}
    while t < end:
        forced = False
        for item in [p for p in pending if p[0] <= t]:
            pending.remove(item)
            state, _ = accept_orders(state, [item[1]], t)
            if item[2] is not None:
                lifts.append((item[2], item[1].reference))
            forced = True
        for when, ref in [x for x in lifts if x[0] <= t]:
            lifts.remove((when, ref))
            state = lift_order(state, ref, t)
            forced = True
        if t >= next_control or forced:
            used = (site.energy_wh() - hour_e0) / 1000.0
            measured = site.power_w()
            # the controller's margin: its floor, or the measurement's uncertainty (every miner on a metered outlet)
            metered = site_power([PowerReading(m.serial, m.phys.power_w(), "pdu") for m in plant.miners])
            margin = max(metered.uncertainty, QuotaSettings().energy_margin)
            lim = dispatch_limit(state, t, used, measured, lag_s=lag_s, uncertainty=margin)
            settled = plant.settled() and (t - last_dispatch).total_seconds() >= lag_s
            decision = band_step(bands, loop, lim.limit_w, measured, planned_w, settled)
            loop = decision.state
            actions[decision.action.value] = actions.get(decision.action.value, 0) + 1
            # an energy pace is not a hard power cap: do not cut outlets for a few seconds of sleep draw above it
            hard = lim.binding.source != Source.ENERGY_BUDGET
            plan = allocate(FleetArrays.from_machines(plant.machines(clock.now())), decision.budget_w,
                            replace(policy, cut_outlets_below_floor=hard))
            plant.apply(plan, clock.now())
            planned_w, last_dispatch, dispatches = plan.total_power_w, t, dispatches + 1
            next_control = t + timedelta(seconds=control_s)
        clock.advance(step_s)
        site.tick()
        t += timedelta(seconds=step_s)
        hash_ws[min(hour_idx, hours - 1)] += site.hashrate_ths() * step_s
        samples.append(PowerSample(t, site.power_w()))
        if t >= t0 + timedelta(hours=hour_idx + 1):
            used_by_hour.append((site.energy_wh() - hour_e0) / 1000.0)
            hour_e0, hour_idx = site.energy_wh(), hour_idx + 1
    result = _summarise(state, day, hours, t0, full_w, fleet0, samples, used_by_hour, hash_ws, dispatches,
                        plant.commands)
    result.reboots, result.actions, result.correction = plant.reboots, actions, loop.correction
    result.wakes, result.sleeps = plant.wakes, plant.sleeps
    return result


def _summarise(state: QuotaState, day: date, hours: int, t0: datetime, full_w: float, fleet0: FleetArrays,
               samples: list[PowerSample], used_by_hour: list[float], hash_ws: list[float], dispatches: int,
               commands: int) -> DayResult:
    end = t0 + timedelta(hours=hours)
    caps = plan_segments(state, t0, end, energy=False)
    curve = _bound_curve(fleet0, full_w)
    outcomes = []
    for h in range(1, hours + 1):
        a, b = hour_window(day, h)
        kwh = state.schedules[0].kwh(h) or 0.0
        hour_caps = [(s.limit_w, (min(s.end, b) - max(s.start, a)).total_seconds()) for s in caps
                     if s.end > a and s.start < b]
        allowed = min(kwh, sum(c * s for c, s in hour_caps) / 3.6e6)
        cut = any(s.binding.source == Source.EMERGENCY for s in caps if s.end > a and s.start < b)
        outcomes.append(HourOutcome(h, kwh, allowed, used_by_hour[h - 1], hash_ws[h - 1] / 3600.0,
                                    _hour_bound(curve, hour_caps, kwh), cut,
                                    _hour_bound(curve, hour_caps, used_by_hour[h - 1])))
    windows = [CapWindow(s.start, s.end, s.limit_w, s.binding.source.value, s.binding.reason, s.binding.reference)
               for s in caps if s.binding.source != Source.CONNECTION or s.limit_w < full_w]
    allot = [Allotment(*hour_window(day, h), state.schedules[0].kwh(h) or 0.0) for h in range(1, hours + 1)]
    rows = ledger_rows("site", "sim", samples, allot, t0, end, period_s=3600)
    return DayResult(outcomes, excursions(samples, windows), energy_excursions(rows), dispatches, commands)


def report(result: DayResult) -> str:
    lines = [f"{'hour':>4} {'bought kWh':>11} {'allowed kWh':>11} {'used kWh':>10} {'above kWh':>9} "
             f"{'% allowed':>9} {'hash % bound':>12}"]
    for h in result.hours:
        used_pct = 100 * h.used_kwh / h.allowed_kwh if h.allowed_kwh > 0 else float("nan")
        lines.append(f"{h.hour:4d} {h.purchased_kwh:11.1f} {h.allowed_kwh:11.1f} {h.used_kwh:10.1f} "
                     f"{h.over_kwh:9.3f} {used_pct:9.2f} {100 * h.hash_thh / max(h.bound_thh, 1e-9):12.2f}"
                     f"{'  emergency order' if h.cut else ''}")
    bought = sum(h.purchased_kwh for h in result.hours)
    allowed = sum(h.allowed_kwh for h in result.hours)
    used = sum(h.used_kwh for h in result.hours)
    hash_ = sum(h.hash_thh for h in result.hours)
    bound = sum(h.bound_thh for h in result.hours)
    calm = [h for h in result.hours if not h.cut]
    if calm:
        c_bought, c_used = sum(h.purchased_kwh for h in calm), sum(h.used_kwh for h in calm)
        c_hash, c_bound = sum(h.hash_thh for h in calm), sum(h.bound_thh for h in calm)
        c_at_used = sum(h.bound_at_used_thh for h in calm)
        lines.append(f"hours without an emergency order ({len(calm)}): used {100 * c_used / c_bought:.2f} % of "
                     f"purchased, hash {100 * c_hash / c_bound:.2f} % of the bound at the purchased energy, "
                     f"{100 * c_hash / c_at_used:.2f} % of the bound at the energy used")
    lines += [
        f"total: bought {bought:.1f} kWh, allowed by the limits {allowed:.1f} kWh, used {used:.1f} kWh "
        f"({100 * used / bought:.2f} % of bought, {100 * used / allowed:.2f} % of allowed)",
        f"kWh above purchased: worst hour {max(h.over_kwh for h in result.hours):.3f}, "
        f"sum {sum(h.over_kwh for h in result.hours):.3f}",
        f"hash: {hash_ / 1e3:.2f} PH x h against a bound of {bound / 1e3:.2f} ({100 * hash_ / bound:.2f} %)",
        f"dispatches {result.dispatches} ({', '.join(f'{k} {v}' for k, v in sorted(result.actions.items()))}), "
        f"setpoint changes sent {result.commands}, sleeps {result.sleeps}, wakes {result.wakes}, "
        f"Whatsminer reboots for a new limit {result.reboots}, "
        f"final correction {result.correction:.4f}",
        f"excursions above instantaneous caps: {len(result.excursions)}",
    ]
    for e in result.excursions:
        lines.append(f"  {e.start:%H:%M:%S}Z {e.duration_s:6.1f} s  peak +{e.peak_over_w / 1e3:8.1f} kW  "
                     f"{e.excess_kwh:8.4f} kWh = {e.excess_mw_s:8.3f} MW x s  cause {e.cause} {e.reference or ''}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--site", type=Path, default=ROOT / "sim/sites/container-1000.toml", help="site file")
    ap.add_argument("--day", type=date.fromisoformat, default=date(2026, 1, 15), help="Astana-local day (ISO)")
    ap.add_argument("--hours", type=int, default=24, help="hours to simulate from local midnight (1..24)")
    ap.add_argument("--step", type=float, default=5.0, help="simulation step, seconds (default 5)")
    ap.add_argument("--control", type=float, default=15.0, help="control period, seconds (default 15)")
    ap.add_argument("--lag", type=float, default=30.0, help="actuation lag assumed by the energy pace, seconds")
    ap.add_argument("--no-cuts", action="store_true", help="run without the two emergency orders")
    args = ap.parse_args(argv)
    if not 1 <= args.hours <= 24:
        ap.error("--hours must be 1..24")
    if 3600 % args.step:
        ap.error("--step must divide 3600")
    result = run_day(args.site, args.day, args.hours, args.step, args.control, args.lag,
                     cuts=[] if args.no_cuts else None)
    print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
