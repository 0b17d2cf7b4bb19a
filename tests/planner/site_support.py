"""A small site for the planner's controller and browser tests: 10 S21 (stock, sleep), 10 S19j Pro (LuxOS power
target), 5 S9 (stock), under quota control in zone north-south with a 60 kW connection; a test floor of 18,000
KZT/MWh; hashprice 50 USD/PH/day and 500 KZT/USD imported as labelled test series."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from controller.runtime import Services
from controller.settings import ControllerSettings, load_settings
from kuat.wire import v1

SITE = "kz1"
ZONE = "north-south"
FLOOR = 18_000.0
CONNECTION_KW = 60.0
KEYS = {"operator": "op-key-0123456789", "regulator": "reg-key-0123456789", "grid": "grid-key-0123456789"}
POOL = "stratum+tcp://pool.kz-accredited.example:3333"


def as_(role: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[role]}


def planner_settings(tmp_path: Path, **planner: Any) -> ControllerSettings:
    cfg = {"zone_floors": [{"zone": ZONE, "valid_from": "2024-01-01", "kzt_per_mwh": FLOOR,
                            "source": "test floor (not an official figure)"}],
           "mining_fee_kzt_per_kwh": 2.0, "mining_fee_source": "test: flat 2 KZT/kWh", **planner}  # fmt: skip
    return load_settings(None, database_url=f"sqlite:///{tmp_path / 'kuat.sqlite'}", sites=[SITE],
                         api_keys=[{"name": f"t-{r}", "role": r, "key": k} for r, k in KEYS.items()],
                         planner=cfg, registry={"mode": "none_lab"})  # a lab: the bids, not rights  # fmt: skip


def miner(n: int, model: str, power_w: float, ths: float, target: bool, state: v1.MinerState = v1.MinerState.MINING,
          available: bool = True, boards: list[v1.Board] | None = None) -> v1.MinerSample:
    mac = f"02:00:00:00:01:{n:02x}"
    caps = v1.Capabilities(power_target=target, sleep=True)
    return v1.MinerSample(device_id=mac, ip=f"127.9.2.{n}", available=available, state=state, make="Antminer",
                          model=model, serial=f"SER-{n}", mac=mac, hashrate_ths=ths, power_w=power_w,
                          power_source=v1.PowerSource.PDU, temp_c=70.0, pools=[v1.Pool(url=POOL, active=True)],
                          capabilities=caps, boards=boards or [])  # fmt: skip


def fleet() -> list[v1.MinerSample]:
    out = [miner(i, "S21", 3500, 200, False) for i in range(1, 11)]
    out += [miner(i, "S19j Pro", 3068, 104, True) for i in range(11, 21)]
    out += [miner(i, "S9", 1323, 13.5, False) for i in range(21, 26)]
    return out


def ingest(services: Services, miners: list[v1.MinerSample], seq: int = 1) -> None:
    batch = v1.TelemetryBatch(site=SITE, gateway="gw1", seq=seq, ts=datetime.now(UTC), miners=miners)
    assert services.telemetry.ingest(batch)


def seed(services: Services, miners: list[v1.MinerSample] | None = None) -> None:
    quota = services.quota
    assert quota is not None
    quota.set_site_limits(SITE, connection_kw=CONNECTION_KW, zone=ZONE, actor="test")
    ingest(services, miners if miners is not None else fleet())


def series_csv(today: date) -> tuple[bytes, bytes]:
    day = (today - timedelta(days=1)).isoformat()
    return (f"day,usd_per_ph_day,source\n{day},50,test series (not market data)\n".encode(),
            f"day,kzt_per_usd,source\n{day},500,test series (not the National Bank's)\n".encode())


def results_csv(day: date, won: list[float], offered: float = 80.0, clearing: float | None = None,
                zone: str = ZONE) -> bytes:
    rows = ["day,zone,hour,offered_mwh,sold_mwh,clearing_kzt_per_mwh,won_mwh,paid_kzt"]
    for h, w in enumerate(won, start=1):
        rows.append(f"{day},{zone},{h},{offered},{offered * 0.3:.3f},{'' if clearing is None else clearing},{w},")
    return ("\n".join(rows) + "\n").encode()
