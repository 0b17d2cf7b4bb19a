"""Raw telemetry through the controller's influxdb-client writer into a real VictoriaMetrics, read back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.influx import InfluxWriter, line
from controller.runtime import build_services
from controller.settings import InfluxSettings
from tests.controller.conftest import make_settings
from tests.controller.test_ingest_mqtt import wait_for
from tests.controller.wire import T0, batch, miner, pdu
from tests.support.victoriametrics import VictoriaMetrics

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def vm() -> Iterator[VictoriaMetrics]:
    with VictoriaMetrics() as server:
        yield server


def series(vm: VictoriaMetrics, name: str, **labels: str) -> list[dict[str, Any]]:
    sel = ",".join(f'{k}="{v}"' for k, v in labels.items())
    vm.flush()
    return vm.export(f"{name}{{{sel}}}")


def test_line_protocol_escaping_and_empty_points() -> None:
    text = line("miner", [("site", "kz 1"), ("model", "S19j Pro,x"), ("owner", None)],
                [("power_w", 3000.0), ("uptime_s", 5), ("available", True), ("state", 'say "hi"')], 1000)
    assert text == 'miner,model=S19j\\ Pro\\,x,site=kz\\ 1 power_w=3000.0,uptime_s=5i,available=true,' \
                   'state="say \\"hi\\"" 1000'
    assert line("miner", [("site", "kz1")], [("power_w", None), ("temp_c", float("nan"))], 1) is None


def test_telemetry_written_and_read_back(vm: VictoriaMetrics, tmp_path: Path) -> None:
    site = f"vm{time.time_ns() % 10**6}"
    settings = make_settings(tmp_path, influx={"url": vm.url, "token": "", "batch_size": 50,
                                               "flush_interval_ms": 100})  # fmt: skip
    svc = build_services(settings, with_ingest=False)
    try:
        svc.telemetry.ingest(batch(1, T0, [miner(1, 3000.0), miner(2, 1500.0)], [pdu(1, 4500.0)], site=site))
        svc.telemetry.ingest(batch(2, T0 + timedelta(seconds=10), [miner(1, 3100.0)], site=site))
    finally:
        svc.close()  # flushes the writer
    assert svc.metrics.influx_points == 2 + 1 + 2 + 1  # two miners, one PDU with two outlets, then one miner
    power = series(vm, "miner_power_w", site=site, device_id=miner(1).device_id)
    assert len(power) == 1
    assert power[0]["values"] == [3000.0, 3100.0]
    assert power[0]["timestamps"] == [int(T0.timestamp() * 1000), int(T0.timestamp() * 1000) + 10_000]
    labels = power[0]["metric"]
    assert (labels["gateway"], labels["model"], labels["owner"], labels["power_source"], labels["energy_source"]) == \
        ("gw1", "S19j Pro", "unassigned", "reported", "grid")
    assert series(vm, "miner_hashrate_ths", site=site, device_id=miner(2).device_id)[0]["values"] == [100.0]
    assert series(vm, "pdu_power_w", site=site)[0]["values"] == [4500.0]
    outlets = series(vm, "pdu_outlet_current_a", site=site)
    assert sorted(s["metric"]["outlet"] for s in outlets) == ["1", "2"]


def test_unreachable_server_is_retried_then_counted(tmp_path: Path) -> None:
    from tests.support.servers import free_port

    errors: list[int] = []
    retries: list[int] = []
    settings = InfluxSettings(url=f"http://127.0.0.1:{free_port()}", batch_size=10, flush_interval_ms=50,
                              retry_interval_ms=50, max_retries=2, max_retry_time_ms=3000)  # fmt: skip
    writer = InfluxWriter(settings, on_error=errors.append, on_retry=lambda: retries.append(1))
    writer.write(["miner,site=x power_w=1.0 1000"])
    wait_for(lambda: bool(errors), timeout=20, what="the writer to give up")
    writer.close()
    assert errors == [1] and len(retries) == 2
