"""The dashboard's routes on the real controller app (SQLite, registry, quota service; no broker): the page and its
static files (no CDN), keys in headers (or the session cookie; never ?key=), the snapshot and its SSE stream,
fleet rows with registration
status, approvals (all or nothing), hand-entered emergency orders, the ledger CSV."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.app import create_app
from controller.dashboard.api import STATIC_DIR
from controller.runtime import Services, build_services
from controller.settings import load_settings
from demo.seed import HOST_BIN
from kuat import clock
from kuat.wire import v1
from quota.timebase import ASTANA

SITE = "kz1"
POOL = "stratum+tcp://pool.kz-accredited.example:3333"
KEYS = {"operator": "op-key-0123456789", "regulator": "reg-key-0123456789", "grid": "grid-key-0123456789"}


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path / 'kuat.sqlite'}", sites=[SITE],
                             api_keys=[{"name": f"t-{r}", "role": r, "key": k} for r, k in KEYS.items()])  # fmt: skip
    svc = build_services(settings, with_ingest=False)
    yield svc
    svc.engine.dispose()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services.settings, services)) as c:
        yield c


def registry_of(services: Services) -> Any:
    assert services.registry is not None
    return services.registry


def as_(role: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[role]}


def miner(n: int, serial: str | None, power_w: float = 3000.0) -> v1.MinerSample:
    mac = f"02:00:00:00:00:{n:02x}"
    return v1.MinerSample(device_id=mac, ip=f"127.9.1.{n}", available=True, state=v1.MinerState.MINING,
                          make="Antminer", model="S19j Pro", serial=serial, mac=mac, hashrate_ths=100.0,
                          power_w=power_w, power_source=v1.PowerSource.PDU, temp_c=70.0,
                          pools=[v1.Pool(url=POOL, active=True)])  # fmt: skip


def ingest(services: Services, miners: list[v1.MinerSample], seq: int = 1) -> None:
    batch = v1.TelemetryBatch(site=SITE, gateway="gw1", seq=seq, ts=datetime.now(UTC), miners=miners)
    assert services.telemetry.ingest(batch)
    services.sightings.flush()


def seed_owner_and_dpc(services: Services) -> tuple[int, int]:
    from registry.schemas import DpcIn, LicenseeIn

    registry = registry_of(services)
    host = registry.create_licensee(LicenseeIn(bin=HOST_BIN, name="Host LLP", licence_number="DM-9", subtype="I",
                                               valid_from=date(2026, 1, 1)), "test")  # fmt: skip
    dpc = registry.create_dpc(DpcIn(name="DPC", address="Ekibastuz", zone="North", operator_id=host.id,
                                    capacity_mw=5), "test")  # fmt: skip
    return host.id, dpc.id


def put_site_under_quota(services: Services) -> None:
    quota = services.quota
    assert quota is not None
    quota.set_site_limits(SITE, connection_kw=100, actor="test")
    quota.push_schedule(SITE, clock.now().astimezone(ASTANA).date(), [80.0] * 24, actor="test")


def test_the_page_is_served_with_its_own_files_and_no_cdn(client: TestClient) -> None:
    page = client.get("/ui")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', page.text):
        assert client.get(asset).status_code == 200, asset
    for path in STATIC_DIR.iterdir():
        assert not re.search(r"(src|href)=\"https?://|url\(https?://|import .* from \"https?://", path.read_text()), \
            f"{path.name} loads something from the network"


def test_keys_in_headers_or_query(client: TestClient) -> None:
    assert client.get("/api/v1/dashboard/snapshot").status_code == 401
    assert client.get("/api/v1/dashboard/snapshot", headers={"X-API-Key": "not-a-key-at-all"}).status_code == 401
    assert client.get("/api/v1/dashboard/snapshot", headers=as_("regulator")).status_code == 200
    assert client.get("/api/v1/dashboard/ledger.csv").status_code == 401
    assert client.get(f"/api/v1/dashboard/stream?key={KEYS['operator']}").status_code == 401  # never in the URL


def test_snapshot_fleet_and_stream_show_live_telemetry(services: Services, client: TestClient) -> None:
    seed_owner_and_dpc(services)
    ingest(services, [miner(1, "SER-1", 3000.0), miner(2, "SER-2", 3200.0), miner(3, None, 2800.0)])
    snap = client.get("/api/v1/dashboard/snapshot", headers=as_("operator")).json()
    site = snap["site"]
    assert site["name"] == SITE and site["power_w"] == 9000.0 and site["hashrate_ths"] == 300.0
    assert site["efficiency_jth"] == pytest.approx(30.0) and site["states"] == {"mining": 3}
    assert site["limit_w"] is None  # not under quota control yet
    assert snap["history"][-1]["power_w"] == 9000.0
    rows = {r["device_id"]: r for r in client.get("/api/v1/dashboard/fleet", headers=as_("grid")).json()}
    assert rows["02:00:00:00:00:01"]["registration"] == "pending"  # sighted: a pending registration
    assert rows["02:00:00:00:00:03"]["registration"] == "no serial"
    assert rows["02:00:00:00:00:02"]["pool"] == POOL
    page = client.get("/api/v1/dashboard/device/02:00:00:00:00:02", headers=as_("operator")).json()
    assert page["device"]["serial"] == "SER-2" and page["commands"] == []
    assert client.get("/api/v1/dashboard/device/nope", headers=as_("operator")).status_code == 404
    assert client.post("/api/v1/session", headers=as_("regulator")).status_code == 201  # the page's session cookie
    with client.stream("GET", "/api/v1/dashboard/stream") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = next_event(stream.iter_lines())
    assert event["site"]["power_w"] == 9000.0


def next_event(lines: Iterator[str]) -> dict[str, Any]:
    """The first `snapshot` event of an SSE stream."""
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name == "snapshot":
            data: dict[str, Any] = json.loads(line[6:])
            return data
    raise AssertionError("the stream ended without a snapshot")


def test_approve_singly_and_all_or_nothing(services: Services, client: TestClient) -> None:
    owner, _dpc = seed_owner_and_dpc(services)
    ingest(services, [miner(1, "SER-1"), miner(2, "SER-2")])
    pending = client.get("/api/v1/dashboard/registry", headers=as_("operator")).json()
    assert sorted(p["serial"] for p in pending["pending"]) == ["SER-1", "SER-2"]
    kinds = {v["kind"]: v for v in pending["violations"]}  # no pool is accredited in this registry
    assert set(kinds) == {"unregistered_mining", "unaccredited_pool"}
    assert "pool.kz-accredited.example" in kinds["unaccredited_pool"]["evidence"]
    body = {"serials": ["SER-1", "NO-SUCH"], "owner_id": owner}
    refused = client.post("/api/v1/dashboard/approve", json=body, headers=as_("operator"))
    assert refused.status_code == 422 and "NO-SUCH" in refused.text
    assert registry_of(services).get_hsc("SER-1").status == "pending"  # nothing approved
    forbidden = client.post("/api/v1/dashboard/approve", json={"serials": ["SER-1"], "owner_id": owner},
                            headers=as_("regulator"))  # fmt: skip
    assert forbidden.status_code == 403
    done = client.post("/api/v1/dashboard/approve", json={"serials": ["SER-1"], "owner_id": owner},
                       headers=as_("operator"))  # fmt: skip
    assert done.status_code == 200 and done.json() == {"approved": 1, "serials": ["SER-1"]}
    assert registry_of(services).get_hsc("SER-1").status == "registered"
    left = client.get("/api/v1/dashboard/registry", headers=as_("operator")).json()["pending"]
    assert [p["serial"] for p in left] == ["SER-2"]


def test_emergency_order_by_hand_and_the_ledger(services: Services, client: TestClient) -> None:
    ingest(services, [miner(1, "SER-1")])
    unconfigured = client.post("/api/v1/dashboard/emergency", json={"reference": "K-1", "cap_pct": 30},
                               headers=as_("operator"))  # fmt: skip
    assert unconfigured.status_code == 422  # the site is not under quota control: the quota service says why
    put_site_under_quota(services)
    before = client.get("/api/v1/dashboard/snapshot", headers=as_("operator")).json()["site"]
    assert before["limit_w"] == pytest.approx(80_000, rel=0.01)
    for bad in ({"reference": "K-1"}, {"reference": "K-1", "cap_pct": 30, "cap_mw": 1},
                {"reference": "K-1", "cap_pct": 130}, {"reference": "", "cap_pct": 30}):
        assert client.post("/api/v1/dashboard/emergency", json=bad, headers=as_("operator")).status_code == 422, bad
    assert client.post("/api/v1/dashboard/emergency", json={"reference": "K-1", "cap_pct": 30},
                       headers=as_("grid")).status_code == 403  # fmt: skip
    made = client.post("/api/v1/dashboard/emergency", json={"reference": "K-1", "cap_pct": 30, "minutes": 90},
                       headers=as_("operator"))  # fmt: skip
    assert made.status_code == 201, made.text
    snap = client.get("/api/v1/dashboard/snapshot", headers=as_("operator")).json()
    assert snap["site"]["limit_w"] == pytest.approx(24_000, rel=0.01)
    assert "K-1" in snap["site"]["limit_reason"]
    assert [e["reference"] for e in snap["quota"]["emergencies"] if e["active"]] == ["K-1"]
    assert client.post("/api/v1/session", headers=as_("grid")).status_code == 201
    csv = client.get("/api/v1/dashboard/ledger.csv")  # a plain link: the session cookie
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    from controller.quota.ledger import CSV_COLUMNS

    lines = csv.text.splitlines()
    assert lines[0].split(",") == ["hour_astana", *CSV_COLUMNS]  # the hour in Astana time first, then the quota's

