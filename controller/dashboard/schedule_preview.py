"""A day-ahead schedule checked against the fleet before it is pushed: per hour, what was bought against what the
fleet can draw, with a warning where the two disagree. Pure: the caller passes the fleet rows and the site limits.

What the fleet can draw in an hour is the sum of the nominal power (model catalogue) of every machine that is not
offline (a sleeping machine can be woken; an offline one cannot), or its measured power when the model is unknown,
capped at the site's connection. Protected machines (quota machine rules) are never slept or cut, so an hour that
buys less than they draw cannot be kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from pydantic import BaseModel, Field

from kuat.catalog import lookup


class PreviewHour(BaseModel):
    hour: int = Field(description="1..24: the Astana hour ending at this number (hour 1 is 00:00-01:00 Astana)")
    label: str = Field(description="'00:00-01:00 Astana'")
    bought_kwh: float
    can_draw_kwh: float = Field(description="what the fleet can use in the hour (connection cap applied)")
    protected_kwh: float = Field(description="what the protected machines alone draw")
    status: str = Field(description="ok / unused (bought more than the fleet can draw) / short (less than protected)")
    warnings: list[str]


class SchedulePreviewOut(BaseModel):
    site: str
    day: date
    machines: int = Field(description="machines counted (not offline)")
    fleet_max_w: float
    connection_kw: float | None
    total_bought_kwh: float
    total_can_draw_kwh: float
    hours: list[PreviewHour]
    warnings: int = Field(description="hours with a warning")


def machine_max_w(row: dict[str, Any]) -> float:
    spec = lookup(row.get("model"))
    if spec is not None:
        return spec.nominal_w
    return float(row.get("power_w") or 0.0)


def preview(site: str, day: date, hours_kwh: list[float], rows: Iterable[dict[str, Any]], protected: set[str],
            connection_kw: float | None) -> SchedulePreviewOut:  # fmt: skip
    counted = [r for r in rows if r.get("state") != "offline"]
    fleet_w = sum(machine_max_w(r) for r in counted)
    protected_w = sum(machine_max_w(r) for r in counted if r["device_id"] in protected)
    can_draw = fleet_w / 1e3 if connection_kw is None else min(fleet_w / 1e3, connection_kw)
    hours = [_hour(n, kwh, can_draw, protected_w / 1e3) for n, kwh in enumerate(hours_kwh, start=1)]
    return SchedulePreviewOut(site=site, day=day, machines=len(counted), fleet_max_w=round(fleet_w, 1),
                              connection_kw=connection_kw, total_bought_kwh=round(sum(hours_kwh), 3),
                              total_can_draw_kwh=round(can_draw * len(hours_kwh), 3), hours=hours,
                              warnings=sum(1 for h in hours if h.warnings))  # fmt: skip


def _hour(n: int, kwh: float, can_draw: float, protected: float) -> PreviewHour:
    warnings, status = [], "ok"
    if kwh > can_draw * 1.0001:
        status = "unused"
        warnings.append(f"the fleet can draw at most {can_draw:.1f} kWh: {kwh - can_draw:.1f} kWh bought would go "
                        "unused")  # fmt: skip
    if kwh < protected * 0.9999:
        status = "short"
        warnings.append(f"protected machines alone draw {protected:.1f} kWh: the hour would be exceeded")
    if kwh == 0:
        warnings.append("nothing bought: every machine that is not protected sleeps")
    label = f"{n - 1:02d}:00-{n:02d}:00 Astana"
    return PreviewHour(hour=n, label=label, bought_kwh=kwh, can_draw_kwh=round(can_draw, 3),
                       protected_kwh=round(protected, 3), status=status, warnings=warnings)  # fmt: skip
