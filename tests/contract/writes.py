"""One accepted request for every write route of the walked apps, in an order that works (what a route needs, an
earlier one made): the actor walk (test_write_actors.py) sends each and checks that what it wrote names its key.

Hand-written rather than generated: a schema-valid random body is refused by almost every route that checks its
data for real (a valid BIN, an existing owner, a CSV of the right columns), so a generated walk exercised only 16 of
the 47 controller writes. `{name}` in a URL is filled from an earlier answer's `id` kept under that name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kuat import clock
from quota.timebase import ASTANA
from tests.contract.apps import SITE
from tests.contract.seed import HOST_BIN, POOL

NEW_BIN = "987654321010"  # a valid BIN/IIN (check digit 0) not in the seed
TENANT_BIN = "200000000002"
DPC_CODE = "DPC-A"
ZONE = "north-south"
SERIAL_NEW = "SER-NEW"  # an application to the national registry
DEVICE = "02:00:00:00:01:01"  # the seeded, registered miner


@dataclass(frozen=True)
class Write:
    """One request: `label` is the route as the app serves it (METHOD and path template)."""

    label: str
    url: str
    json: Any = None
    content: bytes | None = None
    content_type: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    role: str = "operator"
    idempotency_key: str | None = None
    keep: str | None = None  # remember the answer's `id` under this name, for later URLs and bodies


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _sample(mac: str, serial: str) -> dict[str, Any]:
    return {"device_id": mac, "ip": "127.9.3.1", "available": True, "state": "mining", "make": "Antminer",
            "model": "S19j Pro", "serial": serial, "mac": mac, "hashrate_ths": 100.0, "power_w": 3000.0,
            "power_source": "pdu", "temp_c": 70.0, "pools": [{"url": POOL, "active": True}]}


def registry_writes() -> list[Write]:
    """The registry's own routes (/api/v1/registry, /api/v1/compliance): in the controller and standalone alike."""
    base = "/api/v1/registry"
    csv = f"serial,owner_bin,dpc,model\nSER-W2,{HOST_BIN},DPC-1,S19j Pro\n".encode()
    lic = {"bin": NEW_BIN, "name": "Walk LLP", "licence_number": "DM-W", "subtype": "II", "valid_from": "2026-01-01"}
    return [
        Write("POST /api/v1/registry/licensees", f"{base}/licensees", lic, keep="licensee"),
        Write("PATCH /api/v1/registry/licensees/{row_id}", f"{base}/licensees/{{licensee}}", {"name": "Walk 2 LLP"}),
        Write("POST /api/v1/registry/dpcs", f"{base}/dpcs", {"name": "DPC-W", "address": "Pavlodar", "zone": "North",
                                                          "operator_id": 1, "capacity_mw": 2}, keep="dpc"),
        Write("PATCH /api/v1/registry/dpcs/{row_id}", f"{base}/dpcs/{{dpc}}", {"capacity_mw": 3}),
        Write("POST /api/v1/registry/pools", f"{base}/pools", {
            "name": "Walk pool", "endpoints": ["stratum+tcp://walk.kz-accredited.example:3333"],
            "accreditation_number": "AP-W", "valid_from": "2026-01-01", "valid_to": "2030-01-01"}, keep="pool"),
        Write("PATCH /api/v1/registry/pools/{row_id}", f"{base}/pools/{{pool}}", {"name": "Walk pool 2"}),
        Write("POST /api/v1/registry/hscs", f"{base}/hscs", {"serial": "SER-W1", "model": "S19j Pro"}),
        Write("PATCH /api/v1/registry/hscs/{ref}", f"{base}/hscs/SER-W1", {"rack": "R9"}),
        Write("POST /api/v1/registry/hscs/{ref}/approve", f"{base}/hscs/SER-W1/approve",
              {"owner_id": 1, "dpc_id": 1}),
        Write("POST /api/v1/registry/import", f"{base}/import", content=csv, content_type="text/csv",
              params={"dry_run": "false"}),
        Write("POST /api/v1/registry/sightings", f"{base}/sightings", {
            "site": SITE, "gateway": "gw-walk", "at": _now(), "samples": [_sample("02:00:00:00:09:01", "SER-W3")]},
            role="agent"),
        Write("POST /api/v1/registry/approve", f"{base}/approve",
              {"items": [{"serial": "SER-W3", "owner_id": 1, "dpc_id": 1}]}),
        Write("DELETE /api/v1/registry/hscs/{ref}", f"{base}/hscs/SER-W1"),
        Write("POST /api/v1/compliance/check", "/api/v1/compliance/check"),
        Write("DELETE /api/v1/registry/pools/{row_id}", f"{base}/pools/{{pool}}"),
        Write("DELETE /api/v1/registry/dpcs/{row_id}", f"{base}/dpcs/{{dpc}}"),
        Write("DELETE /api/v1/registry/licensees/{row_id}", f"{base}/licensees/{{licensee}}"),
    ]


def national_writes() -> list[Write]:
    """The standalone registry's national routes: the authority's, then a DPC's submissions (a key bound to the DPC
    the authority made first)."""
    auth, dpc = "/api/v1/authority", f"/api/v1/dpc/{DPC_CODE}"
    lic = {"bin": TENANT_BIN, "name": "Tenant LLP", "licence_number": "DM-T", "subtype": "II",
           "valid_from": "2026-01-01"}
    now = datetime.now(UTC)
    application = {"kind": "inclusion", "serial": SERIAL_NEW, "owner_bin": HOST_BIN, "model": "S19j Pro",
                   "submitted_by": "operator:walk", "submitted_at": now.isoformat()}
    sighting = {"serial": SERIAL_NEW, "mac": "02:00:00:00:0a:01", "hashing": True, "state": "mining",
                "pools": [POOL], "seen_at": now.isoformat()}
    allowance = {"serial": "SER-BURN", "starts_at": now.isoformat(), "ends_at": (now + timedelta(hours=4)).isoformat(),
                 "reason": "burn-in", "granted_by": "operator:walk"}
    return [
        Write("POST /api/v1/authority/licensees", f"{auth}/licensees", lic, role="authority", keep="t_licensee"),
        Write("PATCH /api/v1/authority/licensees/{row_id}", f"{auth}/licensees/{{t_licensee}}", {"name": "T2 LLP"},
              role="authority"),
        Write("POST /api/v1/authority/dpcs", f"{auth}/dpcs", {"name": "DPC A", "code": DPC_CODE, "address": "Aksu",
                                                            "zone": "North", "operator_id": 1, "capacity_mw": 4},
              role="authority", keep="a_dpc"),
        Write("PATCH /api/v1/authority/dpcs/{row_id}", f"{auth}/dpcs/{{a_dpc}}", {"capacity_mw": 6}, role="authority"),
        Write("POST /api/v1/authority/pools", f"{auth}/pools", {
            "name": "A pool", "endpoints": ["stratum+tcp://a.kz-accredited.example:3333"],
            "accreditation_number": "AP-A", "valid_from": "2026-01-01", "valid_to": "2030-01-01"},
              role="authority", keep="a_pool"),
        Write("PATCH /api/v1/authority/pools/{row_id}", f"{auth}/pools/{{a_pool}}", {"name": "A pool 2"},
              role="authority"),
        Write("POST /api/v1/dpc/{dpc}/applications", f"{dpc}/applications", {"applications": [
            application, {**application, "serial": "SER-BURN"}]},
              role="dpc", idempotency_key="walk-app-1", keep="application"),
        Write("POST /api/v1/authority/applications/{application_id}/decision",
              "/api/v1/authority/applications/{application}/decision", {"decision": "include"}, role="authority"),
        Write("POST /api/v1/dpc/{dpc}/sightings", f"{dpc}/sightings", {"site": SITE, "sightings": [sighting],
                                                                      "sent_at": now.isoformat()},
              role="dpc", idempotency_key="walk-sight-1"),
        Write("POST /api/v1/dpc/{dpc}/allowances", f"{dpc}/allowances", allowance, role="dpc",
              idempotency_key="walk-allow-1"),
        Write("POST /api/v1/authority/registrations/{serial}/status",
              f"/api/v1/authority/registrations/{SERIAL_NEW}/status", {"action": "suspend", "reason": "walk"},
              role="authority"),
    ]


def controller_writes() -> list[Write]:
    """The controller's own routes (quota, commands, money, planner, alerts, dashboard) after the registry's."""
    q = f"/api/v1/quota/{SITE}"
    today = _day(0)
    schedule_csv = ("hour,kwh\n" + "".join(f"{h},70\n" for h in range(1, 25))).encode()
    results = ["day,zone,hour,offered_mwh,sold_mwh,clearing_kzt_per_mwh,won_mwh,paid_kzt"]
    results += [f"{_day(1)},{ZONE},{h},0.08,0.02,,0.05," for h in range(1, 25)]  # the frozen bids' day
    return [
        Write("PUT /api/v1/quota/{site}/limits", f"{q}/limits", {"connection_kw": 100, "zone": ZONE}),
        Write("POST /api/v1/quota/{site}/schedules", f"{q}/schedules", content=schedule_csv, content_type="text/csv",
              params={"day": today}, role="grid"),
        Write("POST /api/v1/quota/{site}/emergencies", f"{q}/emergencies", {"reference": "EO-1", "cap_pct": 50,
                                                                           "minutes": 30}, role="grid", keep="order"),
        Write("POST /api/v1/quota/emergencies/{order_id}/lift", "/api/v1/quota/emergencies/{order}/lift", role="grid"),
        Write("PUT /api/v1/quota/{site}/grid-contract", f"{q}/grid-contract", {"contract_mw": 0.1}, role="grid"),
        Write("DELETE /api/v1/quota/{site}/grid-contract", f"{q}/grid-contract", role="grid"),
        Write("PUT /api/v1/quota/{site}/tenants/{tenant}", f"{q}/tenants/{HOST_BIN}", {"share_pct": 40}),
        Write("DELETE /api/v1/quota/{site}/tenants/{tenant}", f"{q}/tenants/{HOST_BIN}"),
        Write("PUT /api/v1/quota/{site}/machines/{device_id}", f"{q}/machines/{DEVICE}", {"protected": True}),
        Write("DELETE /api/v1/quota/{site}/machines/{device_id}", f"{q}/machines/{DEVICE}"),
        Write("POST /api/v1/commands", "/api/v1/commands", {"device_id": DEVICE, "kind": "sleep"}),
        Write("POST /api/v1/commands/bulk", "/api/v1/commands/bulk", {"device_ids": [DEVICE], "kind": "wake"}),
        Write("POST /api/v1/money/imports/{kind}", "/api/v1/money/imports/meter",
              content=b"meter,date,hour,kwh\nM-GRID,2026-07-03,1,5.1\n", params={"file_name": "meter.csv"}),
        Write("POST /api/v1/money/reports/{month}/{bin_}/publish", f"/api/v1/money/reports/2026-07/{HOST_BIN}/publish"),
        Write("POST /api/v1/planner/hashprice", "/api/v1/planner/hashprice", content_type="text/csv",
              content=f"day,usd_per_ph_day,source\n{_day(-1)},50,test series\n".encode()),
        Write("POST /api/v1/planner/usd-rates", "/api/v1/planner/usd-rates", content_type="text/csv",
              content=f"day,kzt_per_usd,source\n{_day(-1)},500,test series\n".encode()),
        Write("POST /api/v1/planner/bids", "/api/v1/planner/bids", {}, keep="bids"),
        Write("POST /api/v1/planner/results", "/api/v1/planner/results", content_type="text/csv",
              content=("\n".join(results) + "\n").encode(), role="grid"),
        Write("POST /api/v1/alerts/rules", "/api/v1/alerts/rules", {"name": "hot", "condition": "temperature_high",
                                                                   "threshold": 90}, keep="rule"),
        Write("PUT /api/v1/alerts/rules/{rule_id}", "/api/v1/alerts/rules/{rule}", {
            "name": "hot", "condition": "temperature_high", "threshold": 95}),
        Write("DELETE /api/v1/alerts/rules/{rule_id}", "/api/v1/alerts/rules/{rule}"),
        Write("PUT /api/v1/alerts/channels/{name}", "/api/v1/alerts/channels/walk", {
            "kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "walk-secret-0123456789"}),
        Write("POST /api/v1/alerts/channels/{name}/test", "/api/v1/alerts/channels/walk/test"),
        Write("DELETE /api/v1/alerts/channels/{name}", "/api/v1/alerts/channels/walk"),
        Write("POST /api/v1/alerts/{alert_id}/acknowledge", "/api/v1/alerts/{alert}/acknowledge"),
        Write("POST /api/v1/dashboard/approve", "/api/v1/dashboard/approve", {"serials": ["SER-PENDING"],
                                                                             "owner_id": 1}),
        Write("POST /api/v1/dashboard/emergency", "/api/v1/dashboard/emergency", {"reference": "EO-2",
                                                                                 "cap_pct": 80, "minutes": 10}),
        Write("PUT /api/v1/dashboard/racks/{rack}/feeds", "/api/v1/dashboard/racks/R1/feeds", {
            "feeds": [{"name": "A", "capacity_w": 20000}]}),
        Write("POST /api/v1/dashboard/schedule/preview", "/api/v1/dashboard/schedule/preview",
              content=schedule_csv, content_type="text/csv", params={"day": today}),
        Write("DELETE /api/v1/quota/{site}/limits", f"{q}/limits"),  # last: the routes above need the site
    ]


def _day(offset: int) -> str:
    """The Astana day `offset` days from today (the planner's series end yesterday; bids are for tomorrow)."""
    return (clock.now().astimezone(ASTANA).date() + timedelta(days=offset)).isoformat()
