"""Which driver reads which pyasic miner class, and pyasic's data model mapped to Kuat's."""

from __future__ import annotations

import warnings

import pytest
from pyasic.data import MinerData
from pyasic.miners.factory import MinerFactory, MinerTypes

from agent.drivers.pyasic_generic import reading_from_pyasic
from agent.drivers.state import build_sample
from agent.firmware import family_of_pyasic
from kuat.wire import v1


@pytest.mark.parametrize(
    ("miner_type", "model", "family"),
    [
        (MinerTypes.ANTMINER, "ANTMINER S19J PRO", "antminer"),
        (MinerTypes.HIVEON, "ANTMINER S9", "antminer"),
        (MinerTypes.MSKMINER, "ANTMINER S19", "antminer"),
        (MinerTypes.LUX_OS, "ANTMINER S19J PRO", "luxos"),
        (MinerTypes.WHATSMINER, "M30SV40", "whatsminer"),
        (MinerTypes.BRAIINS_OS, "ANTMINER S9", "braiins"),
        (MinerTypes.AVALONMINER, "AVALONMINER 1246", "avalon"),
        (MinerTypes.VNISH, "ANTMINER S19J PRO", "pyasic"),
        (MinerTypes.EPIC, "ANTMINER S19J PRO", "pyasic"),
    ],
)
def test_family_of_pyasic_classes(miner_type: MinerTypes, model: str, family: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        miner = MinerFactory._select_miner_from_classes("127.0.0.1", miner_model=model, miner_type=miner_type)
    assert family_of_pyasic(miner) == family


def test_reading_from_minerdata() -> None:
    data = MinerData(ip="127.0.0.1", mac="AA:BB:CC:DD:EE:FF", uptime=9000, wattage=3100, is_mining=True)
    reading = reading_from_pyasic(data)
    assert (reading.mac, reading.power_w, reading.uptime_s) == ("aa:bb:cc:dd:ee:ff", 3100.0, 9000)
    sample = build_sample("127.0.0.1", reading, "unknown")
    assert sample.power_source == v1.PowerSource.REPORTED and sample.device_id == "aa:bb:cc:dd:ee:ff"
    asleep = reading_from_pyasic(MinerData(ip="127.0.0.1", is_mining=False, uptime=9000))
    assert asleep.sleeping is True
    assert build_sample("127.0.0.1", asleep, "unknown").state == v1.MinerState.SLEEPING
