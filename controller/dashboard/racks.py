"""The site at a glance: halls, racks and slots with each machine's state, power and temperature, and each rack's
power against its PDU feeds' capacity. Built from the fleet rows (live) and the stored placements (a machine that
went silent keeps its slot, shown offline); typed, because the rack view and any other client read the same shape.

Feed check: a rack's measured power is compared with the sum of its feeds' capacity (over 100 %: overloaded; over
80 %: near the limit, the usual continuous-load derating of a breaker) and, with two feeds or more, with what is left
when the largest feed is lost (A/B redundancy: the remaining feeds must carry the whole rack).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from controller.dashboard.placement import Feed, Spot

NEAR_SHARE = 0.8
UNPLACED = "unplaced"


class SlotOut(BaseModel):
    slot: int | None = Field(description="slot number in the rack (None: the agent's config gives none)")
    device_id: str
    serial: str | None = None
    model: str | None = None
    ip: str | None = None
    state: str = Field(description="mining / sleeping / degraded / rebooting / offline")
    power_w: float | None = None
    temp_c: float | None = None
    hashrate_ths: float | None = None
    registration: str | None = None
    live: bool = Field(description="False: only the stored placement is known (not seen since the restart)")


class FeedOut(BaseModel):
    name: str
    capacity_w: float


class RackOut(BaseModel):
    hall: str
    rack: str
    slots: list[SlotOut]
    power_w: float = Field(description="sum of the rack's machines' power now")
    feeds: list[FeedOut]
    capacity_w: float | None = Field(description="sum of the feeds' capacity; None: no feeds configured")
    load_pct: float | None = None
    status: str = Field(description="ok / near / over / unknown (no feeds configured)")
    warnings: list[str]


class HallOut(BaseModel):
    hall: str
    racks: list[RackOut]


class LayoutOut(BaseModel):
    site: str | None
    halls: list[HallOut]
    machines: int
    placed: int


class FeedIn(BaseModel):
    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")
    capacity_w: float = Field(gt=0, le=1e7, allow_inf_nan=False, description="watts the feed may carry")


class RackFeedsIn(BaseModel):
    feeds: list[FeedIn] = Field(max_length=8, description="the rack's PDU feeds (empty: remove them)")


class RackFeedsOut(BaseModel):
    site: str
    rack: str
    feeds: list[FeedOut]


def layout(site: str | None, rows: Iterable[dict[str, Any]], stored: dict[str, Spot],
           feeds: dict[str, list[Feed]]) -> LayoutOut:  # fmt: skip
    """Halls (sorted) of racks (sorted) of slots (by number); machines without a rack go to hall/rack 'unplaced'."""
    racks: dict[tuple[str, str], list[SlotOut]] = {}
    seen: set[str] = set()
    for r in rows:
        seen.add(r["device_id"])
        hall, rack, slot = r.get("hall"), r.get("rack"), r.get("slot")
        if rack is None and r["device_id"] in stored:
            hall, rack, slot = stored[r["device_id"]]
        racks.setdefault((hall or UNPLACED, rack or UNPLACED), []).append(_slot(r, slot))
    for device_id, (hall, rack, slot) in stored.items():
        if device_id not in seen and rack is not None:
            racks.setdefault((hall or UNPLACED, rack), []).append(
                SlotOut.model_construct(slot=slot, device_id=device_id, state="offline", live=False))
    halls: dict[str, list[RackOut]] = {}
    for (hall, rack), slots in sorted(racks.items()):
        slots.sort(key=lambda s: (s.slot is None, s.slot or 0, s.device_id))
        halls.setdefault(hall, []).append(rack_out(hall, rack, slots, feeds.get(rack, [])))
    placed = sum(len(s) for (h, r), s in racks.items() if r != UNPLACED)
    return LayoutOut(site=site, halls=[HallOut(hall=h, racks=rs) for h, rs in halls.items()],
                     machines=sum(len(s) for s in racks.values()), placed=placed)  # fmt: skip


def _slot(r: dict[str, Any], slot: int | None) -> SlotOut:
    """From a fleet row the controller built itself: constructed without re-validation (10,000 slots per read)."""
    return SlotOut.model_construct(
        slot=slot, device_id=r["device_id"], serial=r.get("serial"), model=r.get("model"), ip=r.get("ip"),
        state=r.get("state") or "offline", power_w=r.get("power_w"), temp_c=r.get("temp_c"),
        hashrate_ths=r.get("hashrate_ths"), registration=r.get("registration"), live=True)  # fmt: skip


def rack_out(hall: str, rack: str, slots: list[SlotOut], feeds: list[Feed]) -> RackOut:
    power = sum(s.power_w or 0.0 for s in slots if s.state != "offline")
    capacity = sum(f.capacity_w for f in feeds) if feeds else None
    status, warnings = feed_check(power, feeds)
    return RackOut(hall=hall, rack=rack, slots=slots, power_w=round(power, 1),
                   feeds=[FeedOut(name=f.name, capacity_w=f.capacity_w) for f in feeds], capacity_w=capacity,
                   load_pct=round(100 * power / capacity, 1) if capacity else None, status=status,
                   warnings=warnings)  # fmt: skip


def feed_check(power_w: float, feeds: list[Feed]) -> tuple[str, list[str]]:
    """(status, warnings) of a rack drawing `power_w` on `feeds`."""
    if not feeds:
        return "unknown", ["no PDU feed capacity configured for this rack"]
    capacity = sum(f.capacity_w for f in feeds)
    warnings = []
    if power_w > capacity:
        status = "over"
        warnings.append(f"{power_w / 1e3:.1f} kW exceeds the feeds' {capacity / 1e3:.1f} kW")
    elif power_w > NEAR_SHARE * capacity:
        status = "near"
        warnings.append(f"{100 * power_w / capacity:.0f} % of the feeds' capacity (over {NEAR_SHARE:.0%})")
    else:
        status = "ok"
    if len(feeds) >= 2:
        largest = max(feeds, key=lambda f: f.capacity_w)
        remaining = capacity - largest.capacity_w
        if power_w > remaining:
            warnings.append(f"not redundant: losing feed {largest.name} leaves {remaining / 1e3:.1f} kW "
                            f"for {power_w / 1e3:.1f} kW")  # fmt: skip
    return status, warnings
