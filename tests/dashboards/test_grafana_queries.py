"""Every Grafana query names only measurements, fields and tags that the controller's InfluxDB writer produces.

The produced schema is not a hand-written list: a full telemetry batch goes through the controller's real ingest
path (TelemetryService.ingest -> controller.influx line builders); the line protocol it hands to the writer is
parsed into {measurement: (fields, tags)}.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.quota.loop import LoopPoint
from controller.quota.wiring import loop_observer
from controller.runtime import build_services
from controller.settings import load_settings
from kuat.wire import v1
from quota.limits import Constraint, EffectiveLimit, Source

GRAFANA = Path(__file__).resolve().parents[2] / "dashboards" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
FLUX_COLUMNS = {"_time", "_value", "_field", "_measurement", "_start", "_stop"}
Schema = dict[str, tuple[set[str], set[str]]]  # measurement -> (fields, tags)


class RecordingWriter:
    """Stands in for InfluxWriter's network side only: keeps the lines the ingest path built."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, lines: list[str]) -> None:
        self.lines.extend(lines)


def full_batch() -> v1.TelemetryBatch:
    """One miner and one PDU with every optional value set, so every field the writer knows shows up."""
    miner = v1.MinerSample(
        device_id="02:00:00:00:00:01", ip="127.9.1.1", available=True, state=v1.MinerState.MINING, make="Antminer",
        model="S19j Pro", firmware="bmminer 1.0.0", serial="JYZZTEST", mac="02:00:00:00:00:01", hostname="c01-01",
        hashrate_ths=104.0, nominal_ths=104.0, power_w=3068.0, power_source=v1.PowerSource.PDU,
        reported_power_w=3050.0, power_limit_w=3100.0, temp_c=71.0, fans_rpm=[5400, 5600], errors=["chain 2 warn"],
        pools=[v1.Pool(url="stratum+tcp://pool.kz-accredited.example:3333", active=True)],
        outlet=v1.OutletRef(pdu="pdu-c01-1", outlet=1), uptime_s=3600,
    )  # fmt: skip
    pdu = v1.PduSample(
        device_id="pdu-c01-1", ip="127.9.2.1", available=True, family="apc_rpdu2", model="AP8641", serial="P1",
        power_w=3100.0, energy_kwh=12.5,
        outlets=[v1.OutletSample(index=1, name="c01-01", state=v1.OutletState.ON, power_w=3068.0, current_a=13.9,
                                 energy_kwh=6.1)],
    )  # fmt: skip
    return v1.TelemetryBatch(site="kz1", gateway="gw1", seq=1, ts=datetime.now(UTC), miners=[miner], pdus=[pdu])


def split_unescaped(text: str, sep: str) -> list[str]:
    """Split at `sep` outside double quotes and not escaped with a backslash (line protocol's rules)."""
    parts, current, quoted, escaped = [], "", False, False
    for ch in text:
        if escaped:
            current, escaped = current + ch, False
        elif ch == "\\":
            current, escaped = current + ch, True
        elif ch == '"':
            current, quoted = current + ch, not quoted
        elif ch == sep and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def parse_line(text: str) -> tuple[str, set[str], set[str]]:
    """(measurement, field keys, tag keys) of one line of line protocol."""
    head, fields, _ts = split_unescaped(text, " ")
    measurement, *tags = split_unescaped(head, ",")
    field_keys = {f.split("=", 1)[0] for f in split_unescaped(fields, ",")}
    return measurement, field_keys, {t.split("=", 1)[0] for t in tags}


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> Schema:
    tmp = tmp_path_factory.mktemp("grafana")
    settings = load_settings(None, database_url=f"sqlite:///{tmp / 'kuat.sqlite'}")
    services = build_services(settings, with_ingest=False, with_registry=False)
    recorder = RecordingWriter()
    services.telemetry.influx = recorder  # type: ignore[assignment]
    assert services.telemetry.ingest(full_batch())
    # the quota loop's own measurement, through the observer the controller attaches to the loop
    services.influx = recorder  # type: ignore[assignment]
    binding = Constraint(Source.EMERGENCY, 900_000.0, "emergency order T-1: 30 % of the schedule")
    now = datetime.now(UTC)
    point = LoopPoint(now, 880_000.0, EffectiveLimit(now, 900_000.0, binding, (binding,)), 890_000.0, "hold", "",
                      1.0, 200, 10.0, {}, 12.5)  # fmt: skip
    loop_observer(services)("kz1", point)
    schema: Schema = {}
    for text in recorder.lines:
        measurement, fields, tags = parse_line(text)
        known_fields, known_tags = schema.setdefault(measurement, (set(), set()))
        known_fields |= fields
        known_tags |= tags
    services.engine.dispose()
    return schema


def queries(dashboard: dict[str, Any]) -> list[str]:
    found = [t["query"] for p in dashboard["panels"] for t in p.get("targets", []) if t.get("query")]
    found += [v["query"] for v in dashboard.get("templating", {}).get("list", []) if v.get("query")]
    return found


def problems(query: str, schema: Schema) -> list[str]:
    """Names in a Flux query that the writer never produces (empty: the query is sound)."""
    measurements = re.findall(r'r\._measurement\s*==\s*"([^"]+)"', query)
    if not measurements:
        return ["the query names no measurement"]
    out = [f"measurement {m!r}" for m in measurements if m not in schema]
    fields = set().union(*(schema[m][0] for m in measurements if m in schema))
    tags = set().union(*(schema[m][1] for m in measurements if m in schema))
    out += [f"field {f!r}" for f in re.findall(r'r\._field\s*==\s*"([^"]+)"', query) if f not in fields]
    out += [f"tag {t!r}" for t in re.findall(r"\br\.([a-z][a-z_]*)\s*(?:==|=~|!=)", query) if t not in tags]
    for cols in re.findall(r"columns:\s*\[([^\]]*)\]", query):
        names = set(re.findall(r'"([^"]+)"', cols))
        out += [f"column {c!r}" for c in names - tags - FLUX_COLUMNS]
    out += [f"tag {t!r}" for t in re.findall(r'tag:\s*"([^"]+)"', query) if t not in tags]
    return out


def test_the_writer_produces_the_documented_measurements(produced: Schema) -> None:
    assert set(produced) == {"miner", "pdu", "pdu_outlet", "quota"}
    assert {"limit_w", "target_w", "power_w", "allocation_ms"} <= produced["quota"][0]
    assert {"site", "binding"} <= produced["quota"][1]
    assert {"power_w", "temp_c", "state", "power_limit_w"} <= produced["miner"][0]
    assert {"site", "gateway", "device_id", "owner", "energy_source"} <= produced["miner"][1]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_names_what_the_writer_produces(path: Path, produced: Schema) -> None:
    dashboard = json.loads(path.read_text())
    found = queries(dashboard)
    assert len(found) >= 4, f"{path.name}: expected a dashboard of several queries"
    bad = {q.splitlines()[2] if len(q.splitlines()) > 2 else q: p for q in found if (p := problems(q, produced))}
    assert not bad, f"{path.name}: names the writer never produces: {bad}"


def test_the_check_catches_a_wrong_name(produced: Schema) -> None:
    query = ('from(bucket: "kuat") |> filter(fn: (r) => r._measurement == "miner" and r._field == "watts" '
             'and r.rack == "C01") |> group(columns: ["hall"])')  # fmt: skip
    assert problems(query, produced) == ["field 'watts'", "tag 'rack'", "column 'hall'"]
    assert problems('from(bucket: "kuat") |> filter(fn: (r) => r._measurement == "asic")', produced) == [
        "measurement 'asic'"
    ]


def test_three_dashboards_and_their_provisioning() -> None:
    uids = {json.loads(p.read_text())["uid"] for p in DASHBOARDS}
    assert uids == {"kuat-site-power", "kuat-fleet-health", "kuat-rack-thermal"}
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/kuat-influxdb.yaml").read_text())
    (source,) = datasource["datasources"]
    assert source["type"] == "influxdb" and source["jsonData"]["version"] == "Flux"
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            assert panel["datasource"]["uid"] == source["uid"], f"{path.name}: panel {panel['title']!r}"
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/kuat.yaml").read_text())
    assert provider["providers"][0]["type"] == "file"
