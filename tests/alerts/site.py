"""A small site for the alerts' controller tests: real services (SQLite, the registry, quota and money sides),
telemetry fed through the ingest service, and a settable clock for the alert service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from controller.runtime import Services, build_services
from controller.settings import ControllerSettings, load_settings
from kuat.wire import v1

SITE = "kz1"
KEYS = {"operator": "op-key-0123456789", "regulator": "reg-key-0123456789", "grid": "grid-key-0123456789"}
SECRET = "s3cret-shared-with-the-receiver"


def as_(role: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[role]}


def settings(tmp_path: Path, smtp_port: int | None = None, database_url: str | None = None,
             **alerts: Any) -> ControllerSettings:
    cfg: dict[str, Any] = {"backoff_s": 1.0, "backoff_max_s": 8.0, "max_attempts": 4, "webhook_timeout_s": 5.0,
                           **alerts}
    if smtp_port is not None:
        cfg["smtp"] = {"host": "127.0.0.1", "port": smtp_port, "sender": "kuat@site.test"}
    return load_settings(None, database_url=database_url or f"sqlite:///{tmp_path / 'kuat.sqlite'}", sites=[SITE],
                         api_keys=[{"name": f"t-{r}", "role": r, "key": k} for r, k in KEYS.items()],
                         alerts=cfg)  # fmt: skip


def miner(n: int, temp_c: float = 70.0, ths: float = 200.0, available: bool = True,
          boards_ok: tuple[bool, ...] = (True, True, True),
          state: v1.MinerState = v1.MinerState.MINING) -> v1.MinerSample:
    mac = f"02:00:00:00:0a:{n:02x}"
    return v1.MinerSample(device_id=mac, ip=f"127.9.3.{n}", available=available, state=state,
                          make="Antminer", model="S21", serial=f"AL-{n}", mac=mac, hashrate_ths=ths,
                          nominal_ths=200.0, power_w=3500.0, power_source=v1.PowerSource.PDU, temp_c=temp_c,
                          boards=[v1.Board(index=i, ok=ok) for i, ok in enumerate(boards_ok)])  # fmt: skip


@dataclass
class Site:
    services: Services
    t: datetime
    seq: int = 0

    def feed(self, *miners: v1.MinerSample) -> None:
        self.seq += 1
        batch = v1.TelemetryBatch(site=SITE, gateway="gw1", seq=self.seq, ts=datetime.now(UTC), miners=list(miners))
        assert self.services.telemetry.ingest(batch)

    def at(self, seconds: float) -> None:
        """Move the alert service's clock to T0 + seconds."""
        self.alerts.now = lambda: self.t + timedelta(seconds=seconds)

    @property
    def alerts(self) -> Any:
        return self.services.alerts


def make_site(cfg: ControllerSettings) -> Site:
    services = build_services(cfg, with_ingest=False)
    assert services.alerts is not None
    site = Site(services, datetime(2026, 12, 2, 6, 0, tzinfo=UTC))
    site.at(0)
    return site
