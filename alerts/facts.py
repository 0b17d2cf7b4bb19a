"""What the controller knows, flattened for the rules: one record per machine, site, gateway and open violation.

Plain values only (no wire types, no rows): the collector in controller/alerts/facts.py builds these from the live
state, the quota service, the registry and the money side. `None` means "not known": a condition over an unknown
figure neither holds nor clears (its alert keeps its state).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class MachineFact:
    site: str
    device_id: str
    online: bool  # available: its own sample says so, the sample is fresh, its gateway is online
    mining: bool  # state is "mining" (a sleeping or rebooting machine hashes nothing on purpose)
    serial: str | None = None
    rack: str | None = None
    owner: str | None = None  # the licensee's BIN ("unassigned" when the registry knows no owner)
    owner_name: str | None = None
    model: str | None = None
    hashrate_ths: float | None = None
    nominal_ths: float | None = None
    temp_c: float | None = None
    boards_dead: int | None = None  # boards reported not ok (None: the firmware reports no boards)


@dataclass(frozen=True, slots=True)
class SiteFact:
    site: str
    power_w: float | None = None  # measured (what the quota loop saw, else the live sum)
    limit_w: float | None = None  # effective limit in force (None: not under quota control)
    hour_used_kwh: float | None = None
    hour_purchased_kwh: float | None = None
    hour_remaining_s: float | None = None
    grid_stale: bool | None = None  # None: no grid-signal contract
    excursion_kwh: float | None = None  # above the allotment so far in the current hour
    meter_diff_pct: float | None = None  # (meter - Kuat) / meter x 100, last compared hour
    meter_hour: str | None = None  # which hour that was (ISO, UTC)


@dataclass(frozen=True, slots=True)
class GatewayFact:
    site: str
    gateway: str
    online: bool
    silent_s: float | None  # since its last message (None: never heard, since the controller started)


@dataclass(frozen=True, slots=True)
class ViolationFact:
    id: int
    kind: str
    subject: str  # "hsc" or "dpc"
    site: str | None = None
    device_id: str | None = None
    serial: str | None = None
    first_seen: str | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    machines: list[MachineFact] = field(default_factory=list)
    sites: list[SiteFact] = field(default_factory=list)
    gateways: list[GatewayFact] = field(default_factory=list)
    violations: list[ViolationFact] | None = None  # None: the registry could not be read (keep open alerts)
