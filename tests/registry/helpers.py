"""Builders for telemetry samples as an agent would send them."""

from __future__ import annotations

from typing import Any

from kuat.wire.v1 import MinerSample, MinerState, OutletRef, Pool
from tests.registry.conftest import ACCREDITED


def sample(n: int, *, pools: list[str] | None = None, firmware: str = "bmminer 1.0.0", gateway_pdu: str = "pdu-a",
           outlet: int | None = None, state: MinerState = MinerState.MINING, power_w: float = 3000.0,
           **extra: Any) -> MinerSample:
    mac = f"02:00:00:00:{n // 256:02x}:{n % 256:02x}"
    return MinerSample(
        device_id=mac, ip=f"127.77.1.{n}", available=True, state=state, make="Antminer", model="Antminer S19j Pro",
        firmware=firmware, serial=f"SN{n:05d}", mac=mac.upper(), hashrate_ths=100.0, power_w=power_w,
        pools=[Pool(url=u, active=i == 0) for i, u in enumerate(pools or [ACCREDITED])],
        outlet=OutletRef(pdu=gateway_pdu, outlet=outlet if outlet is not None else n), **extra,
    )
