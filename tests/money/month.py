"""A month at one DPC for the money end-to-end tests: July 2026, site kz1, two licensees (the host A, subtype I,
and a tenant B, subtype II), one miner each, hourly telemetry through the real ingest path, and every kind of input
file the money side imports, made here. The hand-computed figures the tests check are derived in the comments of
tests/money/test_money_e2e.py from the constants below."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from controller.runtime import Services, build_services
from controller.settings import ApiKey, load_settings
from tests.controller.wire import batch, miner

BIN_A = "180340021791"  # host, subtype I
BIN_B = "123456789013"  # tenant, subtype II
KEYS = {"operator": "op-key-0123456789", "regulator": "reg-key-0123456789", "tenant": "tenant-b-key-0123456"}
P_A, P_B = 3000.0, 2000.0  # W, constant
H_A, H_B = 100.0, 50.0  # TH/s, constant
USD = "470.00"  # the National Bank's USD rate, every day
FIRST_SAMPLE = datetime(2026, 6, 30, 18, tzinfo=UTC)  # 23:00 Astana on 30 June
SAMPLES = 745  # hourly, to 2026-07-31 18:00 UTC (23:00 Astana on 31 July): 744 hours booked in July


def close(day: int) -> int:
    """BTC's CoinMarketCap close (USD) of UTC day `day` of July 2026."""
    return 60000 + 100 * day


@dataclass
class Month:
    services: Services
    files: dict[str, tuple[str, bytes]]  # kind -> (file name, content)


def nbk_xml(day: date) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<rates>\n    <date>{day:%d.%m.%Y}</date>\n    <item>\n'
            f"        <fullname>ДОЛЛАР США</fullname>\n        <title>USD</title>\n        <description>{USD}"
            "</description>\n        <quant>1</quant>\n        <index></index>\n        <change>0.00</change>\n"
            "    </item>\n</rates>\n").encode()


def cmc_json() -> bytes:
    quotes = []
    for d in range(1, 32):
        day = f"2026-07-{d:02d}"
        quotes.append({"time_open": f"{day}T00:00:00.000Z", "time_close": f"{day}T23:59:59.999Z",
                       "quote": {"USD": {"open": close(d) - 50, "high": close(d) + 500, "low": close(d) - 500,
                                         "close": close(d), "volume": 2.5e10, "market_cap": 1.2e12,
                                         "timestamp": f"{day}T23:59:59.999Z"}}})
    return json.dumps({"status": {"error_code": 0}, "data": {"id": 1, "name": "Bitcoin", "symbol": "BTC",
                                                            "quotes": quotes}}, indent=2).encode()


def input_files() -> dict[str, tuple[str, bytes]]:
    head = "licensee_bin,name,licence_number,licence_date,wallet,date,asset,quantity,pool,reference\n"
    dist = (head + f"{BIN_A},Host LLP,DM-1,2025-01-10,bc1qhost,2026-07-04,BTC,0.01,pool-kz,A-1\n"
            f"{BIN_A},Host LLP,DM-1,2025-01-10,bc1qhost,2026-07-10,BTC,0.02,pool-kz,A-2\n"
            f"{BIN_B},Tenant LLP,DM-2,2025-02-01,bc1qtenant,2026-07-15,BTC,0.012,pool-kz,B-1\n")
    trades = ("exchange,aifc_licence,licensee_bin,account,date,asset,quantity,price,currency,side,reference\n"
              f"AIX,AFSA-A-LA-2021-0001,{BIN_A},host-1,2026-07-20,BTC,0.02,62000,USD,sell,T-1\n"
              f"Offshore,,{BIN_A},host-9,2026-07-25,BTC,0.01,62400,USDT,sell,T-2\n"
              f"AIX,AFSA-A-LA-2021-0001,{BIN_B},ten-1,2026-07-28,BTC,0.01,62800,USD,sell,T-3\n")
    meter = "meter,date,hour,kwh,status\n" + "".join(f"M-GRID,2026-07-01,{h},5.1,ok\n" for h in range(1, 25))
    meter += "M-GRID,2026-07-02,5,0,faulty\n"
    return {
        "cmc": ("btc-2026-07.json", cmc_json()),
        "src": ("src-2026-07.csv", b"asset,date,value_kzt,note\nBTC,2026-07-10,28700000,published 2026-08-09\n"),
        "distributions": ("pool-kz-2026-07.csv", dist.encode()),
        "trades": ("aix-and-offshore-2026-07.csv", trades.encode()),
        "feeds": ("feeds.csv", b"meter,site,source,valid_from,valid_to\nM-GRID,kz1,grid,2026-01-01,\n"),
        "meter": ("kegoc-M-GRID-2026-07.csv", meter.encode()),
        "prices": ("prices-2026-07.csv", f"licensee_bin,month,price_kzt_per_kwh\n{BIN_A},2026-07,12.5\n"
                   f"{BIN_B},2026-07,27\n".encode()),
        "rewards": ("hashprice-2026-07.csv", ("asset,date,units_per_ths_day\n" + "".join(
            f"BTC,2026-07-{d:02d},0.00001\n" for d in range(1, 32))).encode()),
    }


def build(tmp: Path) -> Month:
    keys = [ApiKey(name="ops", role="operator", key=KEYS["operator"]),
            ApiKey(name="src-inspector", role="regulator", key=KEYS["regulator"]),
            ApiKey(name="tenant-b", role="tenant", key=KEYS["tenant"])]
    settings = load_settings(None, database_url=f"sqlite:///{tmp / 'money.sqlite'}", sites=["kz1"], api_keys=keys,
                             energy_max_gap_s=4000, quota={"enabled": False, "energy_margin_from_meter": True},
                             money={"licensee_keys": {"tenant-b": [BIN_B]}})
    svc = build_services(settings, with_ingest=False)
    register(svc)
    t = FIRST_SAMPLE
    for seq in range(1, SAMPLES + 1):
        svc.telemetry.ingest(batch(seq, t, [miner(1, P_A, hashrate_ths=H_A), miner(2, P_B, hashrate_ths=H_B)]))
        t += timedelta(hours=1)
    svc.rollups.flush(everything=True)
    return Month(svc, input_files())


def register(svc: Services) -> None:
    from registry.schemas import ApproveIn, DpcIn, LicenseeIn

    reg = svc.registry
    assert reg is not None
    svc.telemetry.ingest(batch(0, FIRST_SAMPLE - timedelta(hours=1), [miner(1, None), miner(2, None)]))
    svc.sightings.flush()
    host = reg.create_licensee(LicenseeIn(bin=BIN_A, name="Host LLP", licence_number="DM-1", subtype="I",
                                          valid_from=date(2025, 1, 10)), "operator:test")
    tenant = reg.create_licensee(LicenseeIn(bin=BIN_B, name="Tenant LLP", licence_number="DM-2", subtype="II",
                                            valid_from=date(2025, 2, 1)), "operator:test")
    dpc = reg.create_dpc(DpcIn(name="kz1", address="Ekibastuz", zone="North", operator_id=host.id, capacity_mw=1),
                         "operator:test")
    reg.approve("SN000001", ApproveIn(owner_id=host.id, dpc_id=dpc.id), "operator:test")
    reg.approve("SN000002", ApproveIn(owner_id=tenant.id, dpc_id=dpc.id), "operator:test")
    assert svc.owners.refresh() == 2


def nbk_files() -> list[tuple[str, bytes]]:
    return [(f"nbk-{d:%Y-%m-%d}.xml", nbk_xml(d)) for d in (date(2026, 6, 25) + timedelta(days=i) for i in range(38))]
