"""The commercial meter at the connection point against Kuat's measured sum, hour by hour.

The grid settles on the commercial meter; Kuat's sum is what its quota loop steers. Their difference (meter minus
Kuat, in kWh and as % of the meter) is site losses, loads Kuat does not meter and both sides' errors. The
suggested energy margin for the quota loop is a high percentile of the positive hourly differences (as a share),
bounded: the margin must cover the hours where the meter reads more.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from money.numbers import KWH, RATIO, plain, q


@dataclass(frozen=True)
class HourRow:
    hour: datetime
    meter_kwh: Decimal | None
    kuat_kwh: Decimal | None
    status: str  # ok / estimated / faulty / missing (meter) / no_kuat

    @property
    def diff_kwh(self) -> Decimal | None:
        if self.meter_kwh is None or self.kuat_kwh is None:
            return None
        return self.meter_kwh - self.kuat_kwh

    @property
    def diff_pct(self) -> Decimal | None:
        d = self.diff_kwh
        if d is None or not self.meter_kwh:
            return None
        return q(d / self.meter_kwh * 100, RATIO)

    def as_dict(self) -> dict[str, Any]:
        return {"hour": self.hour.isoformat(), "meter_kwh": plain(self.meter_kwh), "kuat_kwh": plain(self.kuat_kwh),
                "diff_kwh": plain(self.diff_kwh), "diff_pct": plain(self.diff_pct), "status": self.status}


@dataclass
class Reconciliation:
    rows: list[HourRow] = field(default_factory=list)

    def compared(self) -> list[HourRow]:
        return [r for r in self.rows if r.diff_kwh is not None and r.status in ("ok", "estimated")]

    def totals(self) -> dict[str, Any]:
        rows = self.compared()
        meter = sum((r.meter_kwh or Decimal(0) for r in rows), Decimal(0))
        kuat = sum((r.kuat_kwh or Decimal(0) for r in rows), Decimal(0))
        diff = meter - kuat
        return {"hours": len(self.rows), "hours_compared": len(rows), "meter_kwh": plain(q(meter, KWH)),
                "kuat_kwh": plain(q(kuat, KWH)), "diff_kwh": plain(q(diff, KWH)),
                "diff_pct": plain(q(diff / meter * 100, RATIO)) if meter else None,
                "hours_faulty_or_missing": sum(r.status in ("faulty", "missing") for r in self.rows)}

    def suggested_margin(self, percentile: Decimal = Decimal("0.95"), cap: Decimal = Decimal("0.2")) -> Decimal:
        """The `percentile` of the hourly (meter - Kuat) / meter shares, at least 0, at most `cap`."""
        shares = sorted(max(Decimal(0), (r.diff_pct or Decimal(0)) / 100) for r in self.compared())
        if not shares:
            return Decimal(0)
        index = min(len(shares) - 1, int((len(shares) - 1) * percentile + Decimal("0.5")))
        return min(cap, shares[index])


def reconcile(meter: Mapping[datetime, tuple[Decimal, str]], kuat: Mapping[datetime, Decimal],
              hours: list[datetime]) -> Reconciliation:
    """One row per hour of `hours`: the meter's reading and status (absent: missing) beside Kuat's kWh."""
    rows = []
    for h in hours:
        reading = meter.get(h)
        k = kuat.get(h)
        k_kwh = q(k, KWH) if k is not None else None
        if reading is None:
            rows.append(HourRow(h, None, k_kwh, "missing"))
        else:
            kwh, status = reading
            rows.append(HourRow(h, kwh, k_kwh, status if k is not None else "no_kuat"))
    return Reconciliation(rows)
