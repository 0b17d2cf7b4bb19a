"""What evaluating alert rules costs on a large site: 100,000 machines (200 gateways x 500) under a realistic set of
16 rules (offline, hash rate, temperature, boards, each site-wide and some scoped by rack, owner or model; site
power, the hour's energy, excursions, grid signal, meter, gateways, compliance).

Measured separately, wall and CPU seconds:
  * facts collection: controller/alerts/facts.py over a real live state filled through the ingest service
    (optionally with the registry holding every machine: --registry);
  * rules: alerts.evaluate.evaluate (pure) on those facts, the first run (every alert opening) and a steady run
    (the same alerts open, nothing changes), and storing the first run's transitions (SQLite);
  * a whole steady AlertService.evaluate() as the scheduler runs it.
The machines in trouble are chosen by a seeded draw (2 % offline, 3 % hot, 1 % slow, 0.5 % with a dead board).

Run:  .venv/bin/python bench/alert_rules.py [--machines 100000] [--registry] [--repeat 3]
Prints figures; asserts nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

# run as a script, bench/ is first on sys.path and a script named like a package would shadow it
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE.parent)]

import argparse
import logging
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from alerts.evaluate import evaluate
from controller.alerts import store
from controller.runtime import build_services
from controller.settings import load_settings
from kuat.wire import v1

SITE = "bench"
PER_GATEWAY = 500
RULES: list[dict[str, Any]] = [
    {"name": "offline", "condition": "machine_offline", "sustain_s": 120},
    {"name": "offline rack A", "condition": "machine_offline", "sustain_s": 0,
     "scope": {"racks": [f"A{i}" for i in range(10)]}},
    {"name": "offline owner", "condition": "machine_offline", "scope": {"owners": ["unassigned"]}},
    {"name": "slow", "condition": "hashrate_low", "threshold": 0.8, "sustain_s": 600},
    {"name": "very slow S21", "condition": "hashrate_low", "threshold": 0.5, "scope": {"models": ["S21"]},
     "severity": "critical"},
    {"name": "warm", "condition": "temperature_high", "threshold": 85, "sustain_s": 300},
    {"name": "hot", "condition": "temperature_high", "threshold": 95, "severity": "critical"},
    {"name": "board", "condition": "board_dead"},
    {"name": "near limit", "condition": "site_power_high", "threshold": 0.97},
    {"name": "over limit", "condition": "site_power_high", "threshold": 1.0, "severity": "critical"},
    {"name": "hour", "condition": "hour_energy_overrun"},
    {"name": "excursion", "condition": "excursion"},
    {"name": "grid", "condition": "grid_signal_stale"},
    {"name": "meter", "condition": "meter_mismatch"},
    {"name": "gateway", "condition": "gateway_silent", "threshold": 90},
    {"name": "compliance", "condition": "compliance_violation"},
]


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def miners(gateway: int, rng: random.Random) -> list[v1.MinerSample]:
    out = []
    for i in range(PER_GATEWAY):
        n = gateway * PER_GATEWAY + i
        mac = f"02:{n >> 24 & 255:02x}:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}:01"
        r = rng.random()
        out.append(v1.MinerSample(
            device_id=mac, ip=f"10.{gateway % 250}.{i // 250}.{i % 250}", available=r >= 0.02,
            state=v1.MinerState.MINING, make="Antminer", model="S21" if n % 2 else "S19j Pro", serial=f"B{n:07d}",
            mac=mac, hashrate_ths=(150.0 if 0.02 <= r < 0.03 else 198.0), nominal_ths=200.0, power_w=3500.0,
            power_source=v1.PowerSource.PDU, temp_c=(97.0 if 0.03 <= r < 0.06 else 72.0),
            boards=[v1.Board(index=b, ok=not (0.06 <= r < 0.065 and b == 0)) for b in range(3)]))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--machines", type=int, default=100_000, help="rounded to whole gateways of 500")
    ap.add_argument("--registry", action="store_true", help="hand every machine to the registry first (slow)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each step (the best is printed)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # every machine is an unregistered one: the registry warns 100,000 times
    gateways = max(1, args.machines // PER_GATEWAY)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_settings(None, database_url=f"sqlite:///{Path(tmp) / 'bench.sqlite'}", sites=[SITE],
                            quota={"enabled": True}, alerts={"enabled": True})  # fmt: skip
        svc = build_services(cfg, with_ingest=False)
        rng = random.Random(args.seed)
        _, fill_s, _ = timed(lambda: [svc.telemetry.ingest(v1.TelemetryBatch(
            site=SITE, gateway=f"gw{g}", seq=1, ts=datetime.now(UTC), miners=miners(g, rng))) for g in range(gateways)])
        print(f"machines {gateways * PER_GATEWAY:,} on {gateways} gateways, {len(RULES)} rules "
              f"(live state filled in {fill_s:.1f} s)")
        if args.registry:
            _, reg_s, _ = timed(svc.sightings.flush)
            print(f"registry: every machine handed over in {reg_s:.1f} s")
        alerts = svc.alerts
        assert alerts is not None
        for doc in RULES:
            alerts.create_rule(doc, "bench")
        collector = alerts.collect
        best = lambda fn: min((timed(fn) for _ in range(args.repeat)), key=lambda t: t[1])  # noqa: E731
        facts, facts_w, facts_c = best(collector)
        print(f"{'step':<44} {'wall s':>8} {'CPU s':>8}")
        print(f"{'facts collection':<44} {facts_w:>8.3f} {facts_c:>8.3f}")
        now = datetime.now(UTC)
        with store.Session(svc.engine) as s:
            rules = store.live_rules(s)
        first, fw, fc = best(lambda: evaluate(rules, facts, {}, now))
        print(f"{'rules, first run (' + f'{len(first.transitions):,} alerts open)':<44} {fw:>8.3f} {fc:>8.3f}")
        open_now = {(t.state.rule_id, t.state.subject): t.state for t in first.transitions}
        steady, sw, sc = best(lambda: evaluate(rules, facts, open_now, now))
        print(f"{'rules, steady run (' + f'{len(steady.transitions)} transitions)':<44} {sw:>8.3f} {sc:>8.3f}")
        by_id = store.rules_by_id(rules)
        _, aw, ac = timed(lambda: store.apply(svc.engine, first, by_id, now, lambda *a: {}))
        print(f"{'storing the first run (SQLite)':<44} {aw:>8.3f} {ac:>8.3f}")
        _, ew, ec = best(alerts.evaluate)
        print(f"{'AlertService.evaluate(), steady':<44} {ew:>8.3f} {ec:>8.3f}")
        svc.close()
        svc.engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
