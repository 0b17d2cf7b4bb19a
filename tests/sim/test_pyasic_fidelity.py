"""Fidelity check: unmodified pyasic (pinned 0.79) identifies, reads and controls the simulated miners as real ones.

pyasic talks to fixed ports (4028, 80), so this binds them on a random 127.N block and needs root (CI is root).
Physics runs with 0.5 s boot/wake/ramp so control round trips take about a second.
"""

from __future__ import annotations

from typing import Any

import pyasic
import pytest

from kuat.catalog import hashrate_at_power, power_at_ratio
from sim.miners.bmminer import COMPILE_TIME as BM_COMPILE_TIME
from sim.miners.btminer import FW_VERSION as WM_FW_VERSION
from sim.miners.luxos import LUX_VERSION
from sim.runtime import SimMiner
from tests.conftest import requires_root
from tests.sim.conftest import RunningSite, StartSite, until

pytestmark = requires_root

# firmware, catalogue model -> what pyasic must say: make, model, firmware, chips per board
CASES = [
    ("bmminer", "S19j Pro", "AntMiner", "S19j Pro", "Stock", 126),
    ("luxos", "S19j Pro", "AntMiner", "S19j Pro", "LuxOS", 126),
    ("btminer", "M30S", "WhatsMiner", "M30S V40", "Stock", 148),
]
IDS = [c[0] for c in CASES]


@pytest.fixture
async def site(sim_site: StartSite) -> RunningSite:
    return await sim_site(port_offset=0)


async def identify(m: SimMiner) -> Any:
    miner = await pyasic.get_miner(m.ip)
    assert miner is not None, f"pyasic found nothing at {m.ip}"
    return miner


@pytest.mark.parametrize(("fw", "model", "make", "pyasic_model", "firmware", "chips"), CASES, ids=IDS)
async def test_pyasic_identifies_and_reads(site: RunningSite, fw: str, model: str, make: str, pyasic_model: str,
                                           firmware: str, chips: int) -> None:
    m = site.miner(fw, model)
    miner = await identify(m)
    assert (str(miner.make), str(miner.raw_model), str(miner.firmware)) == (make, pyasic_model, firmware)
    assert miner.model == f"{pyasic_model} ({firmware})"

    data = await miner.get_data()
    assert float(data.hashrate) == pytest.approx(m.phys.hashrate_ths(), rel=1e-3)  # TH/s, from GH/s or MH/s
    assert [b.chips for b in data.hashboards] == [chips] * 3
    assert data.pools and str(data.pools[0].url) == m.d.pools[0]
    assert data.uptime is not None and data.uptime > 0
    assert [f.speed for f in data.fans][:2] == m.phys.fans_rpm()[:2]
    assert data.fw_ver == {"bmminer": BM_COMPILE_TIME, "luxos": LUX_VERSION, "btminer": WM_FW_VERSION}[fw]
    if fw == "bmminer":
        assert data.wattage is None  # stock Antminer firmware reports no power
    else:
        assert data.wattage == round(m.phys.power_w())
    if fw != "luxos":  # pyasic 0.79's LuxOS backend returns before reading MAC and has no serial source
        assert (data.serial_number, data.mac) == (m.serial, m.d.mac.upper())
        assert data.hostname == m.d.hostname


@pytest.mark.parametrize(("fw", "model"), [(c[0], c[1]) for c in CASES], ids=IDS)
async def test_pyasic_stop_and_resume_mining(site: RunningSite, fw: str, model: str) -> None:
    m = site.miner(fw, model)
    miner = await identify(m)
    assert await miner.stop_mining() is True
    await until(lambda: m.phys.phase() == "sleeping", f"{fw} asleep")
    asleep = await miner.get_data()
    assert float(asleep.hashrate) == 0.0
    if fw != "luxos":  # pyasic reads is_mining from the web work mode (Antminer) and status/devdetails (btminer)
        assert asleep.is_mining is False
    if asleep.wattage is not None:
        assert asleep.wattage < 100  # sleeping draws tens of watts, not zero
    assert await miner.resume_mining() is True
    await until(lambda: m.phys.phase() == "mining", f"{fw} awake")
    awake = await miner.get_data()
    assert float(awake.hashrate) == pytest.approx(m.phys.hashrate_ths(), rel=1e-3)
    assert float(awake.hashrate) > 0.9 * m.phys.spec.nominal_ths


async def test_pyasic_whatsminer_power_limit_follows_the_curve(site: RunningSite) -> None:
    m = site.miner("btminer", "M30S")
    miner = await identify(m)
    before = await miner.get_data()
    limit = 2600
    assert await miner.set_power_limit(limit) is True
    assert m.phys.phase() == "booting"  # Whatsminer reboots to apply a power limit
    await until(lambda: m.phys.phase() == "mining", "reboot after the power limit")
    after = await miner.get_data()
    assert after.wattage_limit == limit
    assert after.wattage == pytest.approx(limit, rel=0.01)
    nominal_equiv_w = limit / (m.phys.power_mult * m.phys._temp_factor())
    expected_ths = hashrate_at_power(m.phys.spec, nominal_equiv_w) * m.phys.hash_mult
    assert float(after.hashrate) == pytest.approx(expected_ths, rel=1e-3)
    power_cut = 1 - after.wattage / before.wattage
    hash_cut = 1 - float(after.hashrate) / float(before.hashrate)
    assert 0 < hash_cut < power_cut  # lower power costs proportionally less hash rate


async def test_pyasic_luxos_power_limit_picks_a_profile_on_the_curve(site: RunningSite) -> None:
    m = site.miner("luxos", "S19j Pro")
    miner = await identify(m)
    before = await miner.get_data()
    limit = 2500
    assert await miner.set_power_limit(limit) is True
    after = await miner.get_data()
    profile = m.proto["lux_profile"]
    assert isinstance(profile, str) and profile.endswith("MHz")
    ratio = int(profile.removesuffix("MHz")) / 545
    spec = m.phys.spec
    assert power_at_ratio(spec, ratio) <= limit < power_at_ratio(spec, ratio + 25 / 545)  # highest preset under
    assert after.wattage_limit == round(power_at_ratio(spec, ratio))
    assert float(after.hashrate) == pytest.approx(spec.nominal_ths * ratio * m.phys.hash_mult, rel=1e-3)
    expected_w = power_at_ratio(spec, ratio) * m.phys.power_mult * m.phys._temp_factor()
    assert after.wattage == pytest.approx(expected_w, abs=1)
    assert after.wattage < before.wattage and float(after.hashrate) < float(before.hashrate)
