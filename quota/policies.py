"""The quota loop's small policies, pure (no I/O, no wire types), so each can be tested and argued on its own:

- what to reserve for a machine the loop cannot steer this run (`held_w`);
- the dead band that keeps a setpoint from being re-sent for a change the firmware would only re-tune for
  (`within_dead_band`);
- the floor a machine's firmware allows for a power target, and how a refusal raises it (`firmware_spec`,
  `raised_floor`);
- machines that do not follow their setpoint: re-sent, then cut at their outlet (`escalate`, on top of
  `quota.control.stragglers`).

controller/quota/ applies them to the live state; they were private helpers of its loop before (issue 13).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field, replace

import numpy as np

from kuat.catalog import ModelSpec, ratio_at_power
from quota.allocate import Mode
from quota.control import Planned, Redispatch, stragglers
from quota.fleet import BOOL, F64, I64, FleetArrays, Now

# ---------------------------------------------------------------- held power of machines that cannot be steered

COMMITTED_S = 600.0  # a machine told to change within this long is assumed to come back at that setpoint


def held_w(spec: ModelSpec | None, sent: tuple[Mode, float | None] | None, since_sent_s: float | None,
           measured_w: float | None, reported_w: float | None) -> float:
    """The power to reserve for a machine the loop cannot steer now (unreachable with its outlet on, or a model
    not in the catalogue). Left out of the plan, its draw would be handed to other machines, which would be woken
    and slept again when it came back.

    Told something within `COMMITTED_S`, it is reserved at what that setpoint draws (`sent`: mode and target):
    a Whatsminer rebooting to apply a new limit reads full power (the last reading before it went down), then
    ~120 W while it boots, then its limit; reserving what it read would swing the others with it. Otherwise:
    what its outlet measures (`measured_w`), or what it last reported. Whatever it really draws meanwhile is in
    the measured site power the band loop steers by."""
    if sent is not None and spec is not None and since_sent_s is not None and since_sent_s <= COMMITTED_S:
        mode, target = sent
        if mode == Mode.RUN:
            return max(0.0, spec.max_power_w)
        if mode == Mode.SLEEP:
            return max(0.0, spec.sleep_w)
        if mode == Mode.OUTLET_OFF:
            return 0.0
        return max(0.0, target or 0.0)
    return max(0.0, measured_w if measured_w is not None else (reported_w or 0.0))


# ---------------------------------------------------------------- dead band

DEAD_BAND_W = 25.0
DEAD_BAND = 0.015


def within_dead_band(a: float | None, b: float | None) -> bool:
    """Two power targets close enough that sending the new one buys nothing (the firmware would re-tune, and a
    Whatsminer reboot, for nothing; the band loop absorbs the difference). None (no target) only matches None."""
    if a is None or b is None:
        return a == b
    return abs(a - b) <= max(DEAD_BAND_W, DEAD_BAND * max(a, b))


def held_in_band(pairs: Sequence[tuple[float | None, float | None] | None], slack_w: float) -> tuple[list[bool], float]:
    """Which setpoints keep their previous target (`pairs[i]`: previous and new power target of a machine whose
    mode did not change; None: changed mode or nothing sent before, so it is sent). Keeping a target within the
    dead band draws `previous - new` more than planned: keeping the ones that draw less comes first (they free
    power), then the ones that draw more while the total stays within `slack_w` (the budget the plan left
    unused). Without that limit, a site asked to come down by a few watts per machine would keep every old target
    and sit above its limit for good (CI saw 20,011 W against a 20,000 W safe level). Returns the mask and the
    watts the kept targets draw above the plan (negative: below)."""
    costs = [(p[0] - p[1]) if p is not None and p[0] is not None and p[1] is not None else 0.0
             for p in pairs]
    candidates = [i for i, p in enumerate(pairs) if p is not None and within_dead_band(p[0], p[1])]
    held = [False] * len(pairs)
    extra = 0.0
    for i in sorted(candidates, key=lambda k: costs[k]):
        if costs[i] > 0 and extra + costs[i] > max(0.0, slack_w):
            break
        held[i] = True
        extra += costs[i]
    return held, extra


# ---------------------------------------------------------------- floors

FLOOR_RAISE = 1.25  # a refused power target raises the machine's floor to this multiple of what was refused
NO_ROOM = 0.98  # a floor at or above this share of full power leaves no room for a target


def firmware_spec(spec: ModelSpec | None, power_target: bool, power_min_w: float | None,
                  floor_w: float | None) -> tuple[ModelSpec | None, bool]:
    """The model as this machine's firmware allows it: its reported minimum power target and any learnt floor
    narrow the model's range. Returns the spec (None: not in the catalogue) and whether power targets are usable."""
    if spec is None or not power_target:
        return spec, False
    lowest = max(power_min_w or 0.0, floor_w or 0.0)
    if lowest <= spec.min_power_w:
        return spec, True
    if lowest >= spec.max_power_w * NO_ROOM:
        return spec, False  # no room for a target: full or idle
    return replace(spec, min_ratio=ratio_at_power(spec, lowest)), True


def raised_floor(floor_w: float | None, refused_w: float) -> float:
    """The floor after the firmware refused a target of `refused_w` (e.g. below its lowest preset): the next
    dispatch asks for something it can do."""
    return max(floor_w or 0.0, refused_w * FLOOR_RAISE)


# ---------------------------------------------------------------- straggler escalation

STRAGGLER_TOLERANCE = 0.15  # the model's per-machine error is a few %: only clear misses count
STRAGGLER_TOLERANCE_W = 60.0
MAX_ATTEMPTS = 3  # re-sends before a machine on a switchable outlet is cut there


@dataclass
class Escalation:
    """What to do about the machines that did not follow, and what to remember for the next run."""

    redispatch: list[Redispatch]
    resend: set[str]  # the same setpoint again (the agent re-applies it)
    escalated: set[str]  # cut at the outlet until planned to run again
    attempts: dict[str, int] = field(default_factory=dict)


def escalate(ids: Sequence[str], modes: I64, planned_w: F64, correction: float, unchanged: BOOL,
             measured: Mapping[str, float | None], sent_at: Mapping[str, float], now_s: float, can_off: BOOL,
             attempts: Mapping[str, int], escalated: Set[str], settle_s: float) -> Escalation:
    """Machines still drawing clearly more than an unchanged sleep, power-target or boards setpoint (fleet order: `ids`,
    `modes`, `planned_w`, `unchanged`, `can_off`) are re-sent, then cut at their outlet after `MAX_ATTEMPTS`
    (quota.control.stragglers decides each). A machine cut earlier stays cut while it is planned to sleep or
    to a target; planned to run again, its outlet comes back on with it. `sent_at`: when each machine's
    setpoint last changed, on the clock of `now_s` (missing: just now)."""
    candidates = (modes == Mode.SLEEP) | (modes == Mode.POWER_TARGET) | (modes == Mode.BOARDS)
    kept = {ids[i] for i in np.flatnonzero(candidates).tolist() if ids[i] in escalated} if escalated else set()
    candidates = candidates & unchanged
    watts = np.full(len(ids), np.nan)
    for i in np.flatnonzero(candidates).tolist():
        reading = measured.get(ids[i])
        if reading is not None:
            watts[i] = reading
    with np.errstate(invalid="ignore"):
        over = candidates & (watts > planned_w * correction * (1 + STRAGGLER_TOLERANCE) + STRAGGLER_TOLERANCE_W)
    planned = {ids[i]: Planned(Mode(int(modes[i])), float(planned_w[i]) * correction,
                               now_s - sent_at.get(ids[i], now_s), bool(can_off[i]))
               for i in np.flatnonzero(over).tolist()}  # fmt: skip
    check = stragglers(planned, {k: float(measured.get(k) or 0.0) for k in planned}, attempts, settle_s=settle_s,
                       tolerance=STRAGGLER_TOLERANCE, tolerance_w=STRAGGLER_TOLERANCE_W,
                       max_attempts=MAX_ATTEMPTS)  # fmt: skip
    resend = set()
    for r in check.redispatch:
        if r.mode == Mode.OUTLET_OFF:
            kept.add(r.device_id)
        else:
            resend.add(r.device_id)
    return Escalation(check.redispatch, resend, kept, check.attempts)


# ---------------------------------------------------------------- a loop with no memory (first run, restart, takeover)


def model_now_w(fleet: FleetArrays) -> float:
    """What the model says the machines draw as they are now: a power target where one is in force, else full
    (running), the model's sleep power (sleeping), nothing (off)."""
    running = fleet.now == Now.RUNNING
    at_target = running & np.isfinite(fleet.current_w)
    watts = np.where(at_target, fleet.current_w, np.where(running, fleet.max_power, 0.0))
    watts = np.where(fleet.now == Now.SLEEPING, fleet.sleep_w, watts)
    return float(watts.sum())


def initial_correction(measured_w: float, model_w: float, highest: float) -> float:
    """The band loop's correction for its first cycle, when it remembers nothing (a restart, a takeover): what the
    site draws against what the model says it draws as it is, never below 1 (the default) nor above `highest`.
    Without it a restarted loop budgets with the model's raw error and overshoots a cap the previous one held."""
    if measured_w <= 0 or model_w <= 0:
        return 1.0
    return min(max(measured_w / model_w, 1.0), highest)
