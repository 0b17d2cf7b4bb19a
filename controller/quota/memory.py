"""What the quota loop remembers about a site between runs (`SiteRuntime`), and what each run leaves behind
(`LoopPoint`: the history the API, the dashboard and the metrics read). Data only: the jobs that fill it are
controller.quota.view (the live state), .followup (acks and stragglers), .bookkeeping (energy and the ledger)."""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.quota import dispatch
from controller.quota.view import Seen, SiteView
from quota.control import LoopState
from quota.fleet import FleetArrays, Now
from quota.ledger import CapWindow, Excursion, LedgerRow, PowerSample
from quota.limits import EffectiveLimit, QuotaState


@dataclass(frozen=True, slots=True)
class LoopPoint:
    ts: datetime
    power_w: float
    limit: EffectiveLimit
    target_w: float
    action: str
    reason: str
    correction: float
    machines: int
    hour_used_kwh: float
    tenant_w: dict[str, float]
    elapsed_ms: float = 0.0  # the run, from reading the live state to the last batch handed to MQTT

    def view(self) -> dict[str, Any]:
        return {"ts": self.ts, "power_w": round(self.power_w, 1), "limit_w": round(self.limit.limit_w, 1),
                "target_w": round(self.target_w, 1)}


@dataclass(frozen=True, slots=True)
class ClosedPeriod:
    """A ledger period as computed when it closed (kept in memory by a standby until it writes again)."""

    start: datetime
    end: datetime
    rows: list[LedgerRow]
    mean_w: float
    limit_w: float
    target_w: float
    excursions: list[Excursion]
    closes_hour: QuotaState | None  # the period ends an hour: its purchased-energy check runs with this state


@dataclass
class SiteRuntime:
    """What the loop remembers about one site between runs."""

    points: deque[LoopPoint]
    loop_state: LoopState = field(default_factory=LoopState)
    last: PowerSample | None = None
    hour_start: datetime | None = None
    hour_used_kwh: float = 0.0
    period_start: datetime | None = None
    samples: list[PowerSample] = field(default_factory=list)  # the open ledger period (+ the sample before it)
    tenant_samples: dict[str, list[PowerSample]] = field(default_factory=dict)
    caps: list[CapWindow] = field(default_factory=list)
    period_limit_w: float = math.inf
    sent: dict[str, dispatch.Wire] = field(default_factory=dict)  # device -> (mode, power_w) last sent
    sent_at: dict[str, float] = field(default_factory=dict)  # clock time the device's setpoint last changed
    escalated: set[str] = field(default_factory=set)  # cut at the outlet because they did not follow
    attempts: dict[str, int] = field(default_factory=dict)
    changed_at: float = -math.inf  # clock time of the last dispatch that changed something
    changed_real: float = -math.inf  # the same in wall-clock seconds (telemetry receipt times are wall clock)
    acked_real: float = -math.inf  # wall-clock time the agents acked the last change
    planned_w: float = 0.0
    states: dict[str, tuple[Now, float]] = field(default_factory=dict)  # device -> (what it does, since)
    floors: dict[str, float] = field(default_factory=dict)  # device -> lowest power target its firmware took
    reboots: set[str] = field(default_factory=set)  # machines that reboot to apply a limit (their acks may fail)
    inflight: list[str] = field(default_factory=list)  # command ids of the last dispatch whose acks are awaited
    statics: list[tuple[Any, ...]] = field(default_factory=list)  # the fleet's static columns, as last built
    base_fleet: FleetArrays | None = None
    batcher: dispatch.Batcher = field(default_factory=dispatch.Batcher)
    seen: dict[str, Seen] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    look_s: float = 0.0  # how long the last pass over the live state took
    prepared: tuple[float, SiteView] | None = None  # (time.monotonic(), view) prepared between runs
    unwritten: list[ClosedPeriod] = field(default_factory=list)  # closed while standby (controller.lease)
