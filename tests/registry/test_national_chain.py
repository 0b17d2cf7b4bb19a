"""History a regulator verifies without trusting the server: the audit feed downloaded over HTTP and checked by
`kuat registry verify` offline against the published public key; edits behind the server's back and a chain re-signed
without the key are found; the registry as of a past instant is rebuilt from the chain. Also the roles' reach."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from registry import audit
from registry.app import create_app
from registry.dpc_port import InProcessDpcPort
from registry.models import Role
from registry.national import chainfile
from registry.national.service import NationalRegistry
from registry.national.setup import create_key
from registry.national.signing import Signer
from registry.service import RegistryService
from registry.settings import RegistrySettings
from serverkit.db import session_factory
from tests.registry.conftest import StepClock, bearer
from tests.registry.national_world import application, batch, build_world, sighting, step

REPO = Path(__file__).resolve().parents[2]


class Setup:
    def __init__(self, client: TestClient, nat: NationalRegistry, port: InProcessDpcPort, keys: dict[str, str],
                 tmp: Path) -> None:
        self.client, self.nat, self.port, self.keys, self.tmp = client, nat, port, keys, tmp

    def download(self, name: str = "feed.jsonl") -> Path:
        path = self.tmp / name
        resp = self.client.get("/api/v1/audit/events.jsonl", headers=bearer(self.keys["regulator"]))
        assert resp.status_code == 200
        path.write_text(resp.text)
        return path

    def public_key(self) -> Path:
        path = self.tmp / "registry.pub"
        path.write_text(self.client.get("/api/v1/audit/public-key").json()["public_key_pem"])
        return path


@pytest.fixture
def setup(engine: Engine, clock: StepClock, tmp_path: Path) -> Iterator[Setup]:
    sessions = session_factory(engine)
    nat = NationalRegistry(sessions, clock)
    build_world(nat)
    settings = RegistrySettings(compliance_interval_s=0, signing_key_file=str(tmp_path / "signing.pem"))
    app = create_app(settings, service=RegistryService(sessions, clock), national=nat)
    keys = {r.value: create_key(sessions, f"t-{r.value}", r) for r in (Role.AUTHORITY, Role.REGULATOR)}
    keys["dpc"] = create_key(sessions, "t-dpc", Role.DPC, ["DPC-A"])
    port = InProcessDpcPort(sessions, ["DPC-A"], clock)
    with TestClient(app) as client:
        yield Setup(client, nat, port, keys, tmp_path)


def kuat(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "kuat.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def some_history(s: Setup, clock: StepClock) -> None:
    receipt = s.port.submit_applications("DPC-A", application("SN1"), "a1")
    decided = s.client.post(f"/api/v1/authority/applications/{receipt.items[0].id}/decision",
                            json={"decision": "include"}, headers=bearer(s.keys["authority"]))
    assert decided.status_code == 200, decided.text
    s.port.submit_applications("DPC-A", application("SN2"), "a2")
    s.port.submit_sightings("DPC-A", batch(sighting("SN2", clock.now)), "s1")  # hashing while only submitted
    s.port.submit_sightings("DPC-A", batch(sighting("SN2", step(clock.now, 1), hashing=False)), "s2")


def test_downloaded_feed_verifies_offline(setup: Setup, clock: StepClock) -> None:
    some_history(setup, clock)
    feed, key = setup.download(), setup.public_key()
    lines = [json.loads(x) for x in feed.read_text().splitlines()]
    assert lines[-1]["type"] == "head" and lines[-1]["seq"] == len(lines) - 1
    entities = {(x.get("entity"), x.get("action")) for x in lines}
    assert ("episode", "opened") in entities and ("episode", "closed") in entities  # violations in the chain
    assert ("application", "included") in entities and ("registration", "included") in entities  # decisions
    actors = {x.get("actor") for x in lines if x.get("entity") == "registration"}
    assert "authority:t-authority" in actors
    done = kuat("registry", "verify", "--feed", str(feed), "--public-key", str(key), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is True


def test_event_edited_in_sql_is_named(setup: Setup, engine: Engine, clock: StepClock) -> None:
    some_history(setup, clock)
    with engine.begin() as c:
        seq = c.execute(text("SELECT seq FROM audit_event WHERE entity = 'registration' AND action = 'included'"))\
            .scalar_one()
        c.execute(text("UPDATE audit_event SET actor = 'authority:someone-else' WHERE seq = :s"), {"s": seq})
    done = kuat("registry", "verify", "--feed", str(setup.download()), "--public-key", str(setup.public_key()),
                "--json")
    assert done.returncode == 1
    broken = json.loads(done.stdout)["first_broken"]
    assert broken["seq"] == seq and "edited" in broken["reason"]


def test_row_edited_behind_the_server_found_with_export(setup: Setup, engine: Engine, clock: StepClock) -> None:
    some_history(setup, clock)
    export = setup.tmp / "export.jsonl"

    def download_export() -> None:
        resp = setup.client.get("/api/v1/national/export.jsonl", params={"audited": "true"},
                                headers=bearer(setup.keys["regulator"]))
        export.write_text(resp.text)

    download_export()
    args = ("registry", "verify", "--feed", str(setup.download()), "--public-key", str(setup.public_key()),
            "--export", str(export), "--json")
    assert kuat(*args).returncode == 0
    with engine.begin() as c:
        c.execute(text("UPDATE registration SET status = 'included' WHERE serial = 'SN2'"))
    download_export()
    done = kuat(*args)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["first_broken"]["entity"] == "registration" and "behind the app" in report["first_broken"]["reason"]
    assert report["rows_compared"] == 2


def test_chain_resigned_without_the_key_is_refused(setup: Setup, clock: StepClock) -> None:
    some_history(setup, clock)
    lines = [json.loads(x) for x in setup.download().read_text().splitlines()]
    events, head = lines[:-1], lines[-1]
    target = next(e for e in events if e["entity"] == "registration" and e["action"] == "included")
    target["after"] = target["after"].replace('"status":"included"', '"status":"rejected"')
    prev = chainfile.GENESIS
    for ev in events:  # a forger recomputes every hash from the edit on...
        ev["prev_hash"] = prev
        ev["hash"] = prev = chainfile.event_hash(ev)
    forged = Signer(Ed25519PrivateKey.generate()).sign_head(head["seq"], prev, clock.now)  # ...but not with our key
    path = setup.tmp / "forged.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in [*events, forged]))
    done = kuat("registry", "verify", "--feed", str(path), "--public-key", str(setup.public_key()))
    assert done.returncode == 1 and "signature does not verify" in done.stdout
    # the same rewrite keeping the genuine signed head: the head no longer matches the events
    path.write_text("".join(json.dumps(x) + "\n" for x in [*events, head]))
    done = kuat("registry", "verify", "--feed", str(path), "--public-key", str(setup.public_key()), "--json")
    assert done.returncode == 1 and "events end at" in json.loads(done.stdout)["first_broken"]["reason"]


def test_as_of_a_past_instant_from_the_chain(setup: Setup, clock: StepClock) -> None:
    receipt = setup.port.submit_applications("DPC-A", application("SN3"), "a3")
    clock.advance(timedelta(hours=1))
    setup.nat.decide(receipt.items[0].id, True, None, "authority:t")
    included_at = clock.now
    clock.advance(timedelta(hours=1))
    setup.nat.set_status("SN3", "suspend", "inspection", "authority:t")
    middle = included_at + timedelta(minutes=30)
    resp = setup.client.get("/api/v1/national/as-of.jsonl", params={"at": middle.isoformat()},
                            headers=bearer(setup.keys["regulator"]))
    rows = [json.loads(x) for x in resp.text.splitlines()]
    assert [(r["serial"], r["status"]) for r in rows] == [("SN3", "included")]
    feed = setup.download()
    done = kuat("registry", "as-of", "--feed", str(feed), "--at", (included_at - timedelta(minutes=1)).isoformat())
    assert [json.loads(x)["status"] for x in done.stdout.splitlines()] == ["submitted"]
    done = kuat("registry", "as-of", "--feed", str(feed), "--at", clock.now.isoformat())
    assert [json.loads(x)["status"] for x in done.stdout.splitlines()] == ["suspended"]


def test_offline_recipe_matches_the_servers(setup: Setup, clock: StepClock) -> None:
    some_history(setup, clock)
    for line in setup.download().read_text().splitlines()[:-1]:
        ev = json.loads(line)
        from datetime import datetime

        assert chainfile.event_hash(ev) == ev["hash"] == audit.event_hash(
            ev["seq"], ev["prev_hash"], ev["actor"], datetime.fromisoformat(ev["ts"]), ev["entity"],
            ev["entity_id"], ev["action"], ev["before"], ev["after"])


def test_roles_reach(setup: Setup, clock: StepClock) -> None:
    some_history(setup, clock)
    c, k = setup.client, setup.keys
    licensee = {"bin": "222222222220", "name": "New LLP", "licence_number": "DM-9", "subtype": "II",
                "valid_from": "2026-01-01"}
    assert c.post("/api/v1/authority/licensees", json=licensee, headers=bearer(k["regulator"])).status_code == 403
    assert c.get("/api/v1/national/hscs", headers=bearer(k["dpc"])).status_code == 403
    assert c.get("/api/v1/audit/events", headers=bearer(k["dpc"])).status_code == 403
    assert c.get("/api/v1/national/hscs").status_code == 401
    made = c.post("/api/v1/authority/licensees", json=licensee, headers=bearer(k["authority"]))
    assert made.status_code == 201
    bad = c.post("/api/v1/authority/pools", headers=bearer(k["authority"]),
                 json={"name": "", "endpoints": ["nope"], "accreditation_number": "AP-2", "valid_from": "2026-02-01",
                       "valid_to": "2026-01-01"})
    assert bad.status_code == 422
    assert {tuple(e["loc"][1:]) for e in bad.json()["detail"]} >= {("name",), ("endpoints",)}
    found = c.get("/api/v1/national/hscs", params={"dpc": "DPC-A"}, headers=bearer(k["regulator"])).json()
    assert {i["serial"] for i in found["items"]} == {"SN1", "SN2"}
    assert c.get("/api/v1/national/hscs", params={"dpc": "NOPE"}, headers=bearer(k["regulator"])).status_code == 422
    eps = c.get("/api/v1/national/episodes", headers=bearer(k["regulator"])).json()
    assert [(e["serial"], e["kind"], e["duration_s"]) for e in eps] == [("SN2", "unregistered_mining", 60.0)]
    public = c.get("/api/v1/public/dpcs").json()
    assert {(d["code"], d["included"]) for d in public} == {("DPC-A", 1), ("DPC-B", 0)}
    number = found["items"][0]["registry_number"]
    assert c.get(f"/api/v1/public/registry-numbers/{number}").json()["valid"] is True
    assert c.get("/api/v1/public/registry-numbers/KZ-NOPE").json()["valid"] is False
    lines = c.get("/api/v1/national/export.jsonl", params={"dpc": "DPC-A"}, headers=bearer(k["regulator"])).text
    rows = [json.loads(x) for x in lines.splitlines()]
    assert [(r["serial"], r["status"], r["dpc"], r["owner_bin"]) for r in rows] == [
        ("SN1", "included", "DPC-A", "180340021791"), ("SN2", "submitted", "DPC-A", "180340021791")]
    assert rows[0]["registry_number"].startswith("KZ-HSC-") and rows[0]["changed_at"].startswith("2026-03-02T08:00")
    none = c.get("/api/v1/national/export.jsonl", params={"dpc": "DPC-B"}, headers=bearer(k["regulator"]))
    assert none.status_code == 200 and none.text == ""
    csv_text = c.get("/api/v1/national/export.csv", headers=bearer(k["regulator"])).text
    assert csv_text.splitlines()[0].startswith("id,serial,") and len(csv_text.splitlines()) == 3
    assert c.get("/api/v1/national/export.csv", params={"dpc": "NOPE"},
                 headers=bearer(k["regulator"])).status_code == 422


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_postgres_export_lines_match_the_generic_writer(setup: Setup, engine: Engine, clock: StepClock) -> None:
    """PostgreSQL writes the export's JSON lines itself (`queries.pg_json_line`, concatenated `to_json` values); they
    parse to what the generic writer (Python's json, used for SQLite and the audited export) gives, for text that
    needs escaping (quotes, backslashes, a newline, a control character, Kazakh letters) and for NULLs."""
    from datetime import datetime

    from registry.national import queries

    some_history(setup, clock)
    with engine.begin() as conn:
        conn.execute(text("UPDATE registration SET model = :m, firmware = NULL, reason = :r WHERE serial = 'SN2'"),
                     {"m": 'S19 "Pro" \\ Қуат\nline', "r": "tab\tand \x01 bell"})
    fast = [json.loads(x) for x in "".join(queries._pg_jsonl(setup.nat, [])).splitlines()]
    generic = [json.loads(x) for x in "".join(queries.iter_export(setup.nat, queries.RegFilter(), "jsonl",
                                                                      audited=True)).splitlines()]

    def same_instants(row: dict[str, object]) -> dict[str, object]:
        return {k: datetime.fromisoformat(v) if k.endswith("_at") and isinstance(v, str) else v
                for k, v in row.items() if k != "audited"}

    assert len(fast) == len(generic) == 2
    assert [same_instants(r) for r in fast] == [same_instants(r) for r in generic]
    assert fast[1]["model"] == 'S19 "Pro" \\ Қуат\nline' and fast[1]["firmware"] is None
    assert list(fast[0]) == list(queries.EXPORT_COLUMNS)
