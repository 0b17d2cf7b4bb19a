"""Reports as files: CSV (one file, sections separated by a blank line and a title row) and XLSX (openpyxl, one
sheet per section). Figures are written as the report's own text (exact decimals), numbers in XLSX cells."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from decimal import Decimal
from typing import Any

from openpyxl import Workbook

Section = tuple[str, list[str], list[list[Any]]]  # title, header, rows


def report_sections(report: dict[str, Any]) -> list[Section]:
    r = report
    head = [f"Kuat monthly report {r['month']} (Astana calendar days)", "licensee", r["licensee"], "name", r["name"]]
    energy = [[e["source"], e["kwh"]] for e in r["energy"]] + [["total", r["energy_total_kwh"]]]
    fee = [[f["rate_set"], f["source"], f["basis"], f["rate"], f["kwh"], f["fee_kzt"]] for f in r["fee"]["lines"]]
    fee.append(["total", "", "", "", "", r["fee"]["total_kzt"]])
    income = [[a["asset"], a["units"], a["kzt"]] for a in r["income"]["by_asset"]]
    income.append(["total", "", r["income"]["total_kzt"]])
    lines = [[x["day"], x["asset"], x["quantity"], x["value_kzt"], x["method"], x["reading"], x["income_kzt"],
              x["pool"], x["reference"], x["missing"] or ""] for x in r["income"]["lines"]]
    shares = [[s["asset"], s["period"], s["sold"], s["via_aifc"], s["share"], s["required"], s["status"],
               s["shortfall_units"], s["shortfall_kzt"], "; ".join(s["thresholds"])] for s in r["sale_share"]]
    dev = [[d["asset"], d["ths_days"], d["expected"], d["distributed"], d["deviation_pct"], d["flagged"]]
           for d in r["expected_vs_distributed"]]
    flags = [[f] for f in r["flags"] + r["fee"]["flags"] + r["income"]["missing"]]
    return [
        ("Report", head[:1], [[" ".join(str(x) for x in head[1:])]]),
        ("Energy by source", ["source", "kWh"], energy),
        ("Mining fee", ["rate set", "source", "basis", "rate KZT/kWh", "kWh", "fee KZT"], fee),
        ("Income by asset", ["asset", "units", "KZT"], income),
        ("Income by distribution", ["date", "asset", "quantity", "value KZT", "method", "reading", "income KZT",
                                    "pool", "reference", "missing input"], lines),
        ("Sale share", ["asset", "period", "sold", "via AIFC", "share", "required", "status", "shortfall units",
                        "shortfall KZT", "thresholds"], shares),
        ("Expected vs distributed", ["asset", "TH/s x days", "expected", "distributed", "deviation %", "flagged"],
         dev),
        ("Flags", ["flag"], flags),
        ("Conventions", ["setting", "value"], [[k, str(v)] for k, v in sorted(r["conventions"].items())]),
    ]


def values_sections(table: dict[str, Any]) -> list[Section]:
    rows = [[c["asset"], c["day"], c["value_kzt"], c["source"], c["method"], c["reading"], c["computed_kzt"],
             c["published_kzt"], c["difference_kzt"], c["difference_pct"], c["missing"] or ""]
            for c in table["cells"]]
    return [(f"Values of published digital assets, {table['month']} (KZT per unit)",
             ["asset", "date", "value KZT", "source", "method", "reading", "computed KZT", "SRC KZT",
              "difference KZT", "difference %", "missing input"], rows)]


def evidence_sections(pack: dict[str, Any]) -> list[Section]:
    def table(items: Sequence[Any]) -> tuple[list[str], list[list[Any]]]:
        dicts = [asdict(i) if is_dataclass(i) and not isinstance(i, type) else dict(i) for i in items]
        header = list(dicts[0]) if dicts else ["(none)"]
        return header, [[d.get(h) for h in header] for d in dicts]

    out: list[Section] = report_sections(pack["report"])
    for title, key in (("Distributions", "distributions"), ("Trade confirmations", "trades"),
                       ("Other disposals", "other_disposals")):
        header, rows = table(pack[key])
        out.append((title, header, rows))
    header, rows = table([i.as_dict() for i in pack["imports"]])
    out.append(("Imports (provenance)", header, rows))
    return out


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def to_csv(sections: list[Section]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for i, (title, header, rows) in enumerate(sections):
        if i:
            w.writerow([])
        w.writerow([title])
        w.writerow(header)
        for row in rows:
            w.writerow([_cell(v) for v in row])
    return out.getvalue()


def _xlsx_value(value: Any) -> Any:
    v = _cell(value)
    if isinstance(v, str):
        try:
            if v and v.lstrip("-").replace(".", "", 1).isdigit():
                return float(v) if "." in v else int(v)
        except ValueError:
            return v
    return v


def to_xlsx(sections: list[Section]) -> bytes:
    wb = Workbook()
    first = True
    for title, header, rows in sections:
        ws = wb.active if first else wb.create_sheet()
        assert ws is not None
        first = False
        ws.title = "".join(c for c in title if c not in "[]:*?/\\")[:31]
        ws.append(header)
        for row in rows:
            ws.append([_xlsx_value(v) for v in row])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
