"""After the dispatch: what the agents acked, which setpoints changed, and the machines that did not follow.

- `learn_from_acks`: a power target the firmware refused raises that machine's floor (quota.policies.raised_floor);
  an acked batch is forgotten, and the time of the ack tells `settled` when measurements describe the new plan;
- `note_changes`: the dead band (quota.policies.within_dead_band) keeps the previous setpoint where the new one is
  close to it and the plan's unused budget covers the difference (quota.policies.held_in_band);
- `follow_stragglers`: machines still drawing clearly more than an unchanged setpoint are re-sent, then cut at
  their outlet (quota.policies.escalate).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from controller.quota import dispatch
from controller.quota.memory import SiteRuntime
from kuat.wire import v1
from quota.allocate import Allocation
from quota.fleet import BOOL, FleetArrays
from quota.policies import MAX_ATTEMPTS, escalate, held_in_band, raised_floor

log = logging.getLogger(__name__)

CommandRecord = Callable[[str], Any]  # command id -> its record with the agent's per-item acks (CommandService.get)


def learn_from_acks(site: str, rt: SiteRuntime, command_record: CommandRecord | None) -> None:
    """A power target the firmware refused (e.g. below its lowest preset) raises that machine's floor, so the next
    dispatch asks for something it can do; once acked, the batch is forgotten."""
    if command_record is None or not rt.inflight:
        return
    waiting = []
    refused: list[str] = []
    for command_id in rt.inflight:
        record = command_record(command_id)
        if record is None:
            continue
        if record.status == "sent":
            waiting.append(command_id)
            continue
        if record.acked_at is not None:
            rt.acked_real = max(rt.acked_real, record.acked_at.timestamp())
        for item in record.items:
            sent = rt.sent.get(item.device_id)
            if item.status == v1.AckStatus.APPLIED or sent is None or sent[1] is None:
                continue
            if sent[0] == v1.SetpointMode.POWER_TARGET.value and item.device_id not in rt.reboots:
                rt.floors[item.device_id] = raised_floor(rt.floors.get(item.device_id), sent[1])
                rt.sent.pop(item.device_id, None)
                refused.append(f"{item.device_id} refused {sent[1]:.0f} W ({item.reason}), floor now "
                               f"{rt.floors[item.device_id]:.0f} W")
    rt.inflight = waiting
    if refused:  # one line per ack round, not one per machine (a whole model can refuse at once)
        log.warning("quota %s: %d power targets refused, their floors raised by 25 %%: %s%s", site, len(refused),
                    "; ".join(refused[:3]), " ..." if len(refused) > 3 else "")
        for line in refused[3:]:
            log.debug("quota %s: %s", site, line)


def settled(rt: SiteRuntime, oldest_reading: float, now_s: float, settle_s: float) -> bool:
    """`settle_s` after the last change, every agent has acked it, and every metered machine was read at least
    `settle_s` after that (a reading taken before the plant could move says nothing about the new setpoints)."""
    if now_s - rt.changed_at < settle_s or rt.inflight:
        return False
    return oldest_reading >= max(rt.changed_real, rt.acked_real) + settle_s


def note_changes(rt: SiteRuntime, ids: Sequence[str], wires: list[dispatch.Wire], now_s: float,
                 slack_w: float) -> tuple[list[dispatch.Wire], BOOL, float]:
    """Keep the previous target where the new one is within the dead band and the plan's unused budget
    (`slack_w`) covers what keeping it draws more (quota.policies.held_in_band). Returns what to send, which
    setpoints are unchanged, and the watts the kept targets draw above the plan."""
    sent = rt.sent
    befores = [sent.get(device) for device in ids]
    pairs = [(b[1], w[1]) if b is not None and b[0] == w[0] else None for b, w in zip(befores, wires, strict=True)]
    held, extra_w = held_in_band(pairs, slack_w)
    out: list[dispatch.Wire] = []
    for device, wire, before, keep in zip(ids, wires, befores, held, strict=True):
        if keep and before is not None:
            out.append(before)
            continue
        sent[device] = wire
        rt.sent_at[device] = now_s
        out.append(wire)
    unchanged = np.asarray(held, dtype=bool)
    if not unchanged.all():
        rt.changed_at, rt.changed_real = now_s, time.time()
    return out, unchanged, extra_w


def follow_stragglers(site: str, rt: SiteRuntime, fleet: FleetArrays, plan: Allocation, wires: list[dispatch.Wire],
                      unchanged: BOOL, measured: dict[str, float | None], now_s: float, correction: float,
                      settle_s: float) -> tuple[list[dispatch.Wire], int, set[str]]:
    """Machines still drawing clearly more than an unchanged sleep, power-target or boards setpoint are re-sent (the
    agent applies it again: `reapply`), then cut at their outlet. Returns the setpoints to send, how many were
    newly cut, and the machines whose setpoint is re-sent."""
    found = escalate(fleet.ids, plan.mode, plan.power_w, correction, unchanged, measured, rt.sent_at, now_s,
                     fleet.can_off, rt.attempts, rt.escalated, settle_s)  # fmt: skip
    rt.attempts, rt.escalated = found.attempts, found.escalated
    if found.redispatch:
        first = "; ".join(f"{r.device_id} {r.reason}" for r in found.redispatch[:3])
        log.warning("quota %s: %d machines do not follow their setpoint (re-sent; cut at the outlet after %d "
                    "tries): %s%s", site, len(found.redispatch), MAX_ATTEMPTS, first,
                    " ..." if len(found.redispatch) > 3 else "")  # fmt: skip
    if not rt.escalated:
        return wires, 0, found.resend
    cut = 0
    off: dispatch.Wire = (dispatch.OFF, None)
    out = []
    for device, w in zip(fleet.ids, wires, strict=True):
        if device in rt.escalated:
            if rt.sent.get(device) != off:
                rt.sent[device], rt.sent_at[device] = off, now_s
                cut += 1
            w = off
        out.append(w)
    return out, cut, found.resend
