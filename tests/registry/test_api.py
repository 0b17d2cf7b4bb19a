"""The HTTP API through the real ASGI app, on SQLite and PostgreSQL: roles, 422s, paging, export, import, audit."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from registry.schemas import ApproveIn
from registry.service import RegistryService
from tests.registry.conftest import BIN_HOST, StepClock, bearer
from tests.registry.helpers import sample

LICENSEE = {"bin": "180340021791", "name": "Qazaq Hash LLP", "licence_number": "DM-100", "subtype": "I",
            "valid_from": "2025-02-01"}


def seed(service: RegistryService, world: dict[str, int], clock: StepClock, count: int) -> None:
    service.record_sightings("ekb", "gw1", [sample(n) for n in range(1, count + 1)], clock())
    for n in range(1, count // 2 + 1):
        clock.advance(timedelta(seconds=1))
        service.approve(f"SN{n:05d}", ApproveIn(owner_id=world["host"], dpc_id=world["dpc"]), "operator:seed")


def test_keys_and_roles(client: TestClient, keys: dict[str, str], world: dict[str, int]) -> None:
    assert client.get("/api/v1/registry/hscs").status_code == 401
    assert client.get("/api/v1/registry/hscs", headers=bearer("not-a-key-at-all")).status_code == 401
    assert client.get("/api/v1/registry/hscs", headers=bearer(keys["regulator"])).status_code == 200
    assert client.get("/api/v1/registry/hscs", headers={"X-API-Key": keys["operator"]}).status_code == 200
    denied = client.post("/api/v1/registry/licensees", json={**LICENSEE, "bin": "000000000101"},
                         headers=bearer(keys["regulator"]))
    assert denied.status_code == 403 and "regulator" in denied.json()["detail"]
    assert client.patch(f"/api/v1/registry/licensees/{world['host']}", json={"name": "x"},
                        headers=bearer(keys["regulator"])).status_code == 403
    assert client.delete("/api/v1/registry/hscs/1", headers=bearer(keys["regulator"])).status_code == 403
    assert client.get("/api/v1/registry/hscs", headers=bearer(keys["agent"])).status_code == 403
    assert client.get("/api/v1/compliance/violations", headers=bearer(keys["regulator"])).status_code == 200
    created = client.post("/api/v1/registry/licensees", json=LICENSEE | {"licence_number": "DM-101",
                                                                        "bin": "000000000101"},
                          headers=bearer(keys["operator"]))
    assert created.status_code == 201 and created.json()["valid_to"] == "2028-02-01"  # 3-year licence


def test_bad_input_is_a_422_naming_the_field(client: TestClient, keys: dict[str, str], world: dict[str, int]) -> None:
    op = bearer(keys["operator"])
    bad_bin = client.post("/api/v1/registry/licensees", json=LICENSEE | {"bin": "180340021792"}, headers=op)
    assert bad_bin.status_code == 422
    (err,) = bad_bin.json()["detail"]
    assert err["loc"] == ["body", "bin"] and "check digit" in err["msg"]
    dup = client.post("/api/v1/registry/licensees", json=LICENSEE | {"licence_number": "DM-9"}, headers=op)
    assert dup.status_code == 422 and dup.json()["detail"][0]["loc"] == ["body", "bin"]
    assert "duplicate" in dup.json()["detail"][0]["msg"]
    dates = client.post("/api/v1/registry/pools", json={"name": "p", "endpoints": ["stratum+tcp://p.kz:1"],
                                                        "accreditation_number": "X", "valid_from": "2026-01-01",
                                                        "valid_to": "2025-01-01"}, headers=op)
    assert dates.status_code == 422 and "out of order" in dates.json()["detail"][0]["msg"]
    unknown = client.post("/api/v1/registry/hscs", json={"serial": "S-1", "owner_id": 4242}, headers=op)
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "owner_id"]
    assert client.post("/api/v1/registry/hscs", json={"serial": "S-1"}, headers=op).status_code == 201
    dup_serial = client.post("/api/v1/registry/hscs", json={"serial": "S-1"}, headers=op)
    assert dup_serial.status_code == 422 and dup_serial.json()["detail"][0]["loc"] == ["body", "serial"]
    assert client.get("/api/v1/registry/hscs/no-such-serial", headers=op).status_code == 404
    page = client.get("/api/v1/registry/hscs", headers=op).json()
    assert [h["serial"] for h in page["items"]] == ["S-1"]  # nothing half-written by the failed calls


def test_regulator_pages_filters_and_reads_history(client: TestClient, keys: dict[str, str], service: RegistryService,
                                                   world: dict[str, int], clock: StepClock) -> None:
    seed(service, world, clock, 30)
    reg = bearer(keys["regulator"])
    serials: list[str] = []
    url = "/api/v1/registry/hscs?limit=8"
    for _ in range(10):
        body = client.get(url, headers=reg).json()
        serials += [h["serial"] for h in body["items"]]
        if body["next_cursor"] is None:
            break
        url = f"/api/v1/registry/hscs?limit=8&cursor={body['next_cursor']}"
    assert len(serials) == len(set(serials)) == 30
    filtered = client.get("/api/v1/registry/hscs", params={"status": "registered", "zone": "North",
                                                           "owner_bin": BIN_HOST, "model": "Antminer S19j Pro"},
                          headers=reg).json()
    assert len(filtered["items"]) == 15 and filtered["next_cursor"] is None
    assert client.get("/api/v1/registry/hscs", params={"zone": "Mars"}, headers=reg).status_code == 422
    detail = client.get("/api/v1/registry/hscs/SN00001", headers=reg).json()
    assert detail["hsc"]["status"] == "registered"
    assert [e["action"] for e in detail["history"]] == ["first_seen", "assigned", "registered"]
    assert detail["history"][1]["after"]["owner_id"] == world["host"]


def test_export_csv_and_jsonl(client: TestClient, keys: dict[str, str], service: RegistryService,
                              world: dict[str, int], clock: StepClock) -> None:
    seed(service, world, clock, 12)
    reg = bearer(keys["regulator"])
    response = client.get("/api/v1/registry/export.csv", headers=reg)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 12 and rows[0]["serial"] == "SN00001"
    assert (rows[0]["owner_bin"], rows[0]["dpc_name"], rows[0]["zone"]) == (BIN_HOST, "Ekibastuz-1", "North")
    assert rows[11]["status"] == "pending" and rows[11]["owner_bin"] == ""
    lines = client.get("/api/v1/registry/export.jsonl", params={"status": "registered"}, headers=reg).text.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 6 and all(r["status"] == "registered" for r in records)
    assert records[0]["pools"] == ["stratum+tcp://pool.kz-accredited.example:3333"]
    assert records[0]["changed_at"].endswith("Z") and records[0]["nominal_ths"] == 104.0


def test_export_quotes_awkward_text(client: TestClient, keys: dict[str, str]) -> None:
    awkward = 'Antminer "S19", hydro\nrev 2'
    made = client.post("/api/v1/registry/hscs", json={"serial": "Q-1", "model": awkward, "nominal_ths": 1.5},
                       headers=bearer(keys["operator"]))
    assert made.status_code == 201
    text_csv = client.get("/api/v1/registry/export.csv", headers=bearer(keys["regulator"])).text
    (row,) = list(csv.DictReader(io.StringIO(text_csv)))
    assert row["model"] == awkward and row["nominal_ths"] in {"1.5"} and row["owner_bin"] == ""
    (line,) = client.get("/api/v1/registry/export.jsonl", headers=bearer(keys["regulator"])).text.splitlines()
    assert json.loads(line)["model"] == awkward


def test_verify_endpoint_names_the_first_broken_link(client: TestClient, keys: dict[str, str], engine: Engine,
                                                     service: RegistryService, world: dict[str, int],
                                                     clock: StepClock) -> None:
    seed(service, world, clock, 2)
    reg = bearer(keys["regulator"])
    intact = client.get("/api/v1/registry/audit/verify", headers=reg).json()
    assert intact["ok"] is True, intact
    hsc_id = service.get_hsc("SN00001").id
    with engine.begin() as conn:
        conn.execute(text("UPDATE hsc SET status = 'registered', firmware = 'patched' WHERE serial = 'SN00002'"))
        conn.execute(text("UPDATE hsc SET rack = 'R9' WHERE serial = 'SN00001'"))
    body = client.get("/api/v1/registry/audit/verify", headers=reg).json()
    assert body["ok"] is False and body["first_broken"]["entity"] == "hsc"
    assert body["first_broken"]["entity_id"] == str(hsc_id)  # rows are checked in id order: SN00001 first
    assert len(body["problems"]) == 2


def test_csv_import_dry_run_then_apply(client: TestClient, keys: dict[str, str], service: RegistryService,
                                       world: dict[str, int], clock: StepClock) -> None:
    service.record_sightings("ekb", "gw1", [sample(1), sample(2)], clock())
    op = {**bearer(keys["operator"]), "Content-Type": "text/csv"}
    good = ("serial,owner_bin,dpc,rack,slot,model\n"
            f"SN00001,{BIN_HOST},Ekibastuz-1,R1,1,\n"
            f"SN00002,000000000000,Ekibastuz-1,R1,2,\n"
            f"NEW-1,{BIN_HOST},Ekibastuz-1,R2,1,Antminer S21\n")
    dry = client.post("/api/v1/registry/import", content=good, headers=op)
    assert dry.status_code == 200
    assert dry.json()["counts"] == {"approve": 2, "create": 1} and dry.json()["applied"] is False
    assert service.get_hsc("SN00001").status == "pending"  # a dry run writes nothing
    bad = good + "SN00003,123456789012,Nowhere,R2,2,\n"
    failed = client.post("/api/v1/registry/import?dry_run=false", content=bad, headers=op)
    assert failed.status_code == 422
    error_row = failed.json()["rows"][3]
    assert error_row["line"] == 5 and error_row["errors"][0]["field"] == "owner_bin"
    assert service.get_hsc("SN00001").status == "pending"  # one bad row: nothing applied
    applied = client.post("/api/v1/registry/import?dry_run=false", content=good, headers=op)
    assert applied.status_code == 200 and applied.json()["applied"] is True
    assert service.get_hsc("SN00002").owner_id == world["tenant"] and service.get_hsc("NEW-1").status == "registered"
    assert service.verify_audit().ok


def test_sightings_endpoint_is_idempotent(client: TestClient, keys: dict[str, str], service: RegistryService,
                                          clock: StepClock) -> None:
    body = {"site": "ekb", "gateway": "gw1", "at": clock().isoformat(),
            "samples": [sample(1).model_dump(mode="json")]}
    headers = {**bearer(keys["agent"]), "Idempotency-Key": "a1b2"}
    first = client.post("/api/v1/registry/sightings", json=body, headers=headers)
    second = client.post("/api/v1/registry/sightings", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["new_pending"] == ["SN00001"] and second.json()["replayed"] is True
    assert client.post("/api/v1/registry/sightings", json=body, headers=bearer(keys["regulator"])).status_code == 403


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/registry/export.csv" in paths and "/api/v1/compliance/violations" in paths
