"""Every real miner reply in ../shared/fixtures/miners goes through the real parsers; values checked by hand.

Each expected figure names the fixture key it comes from; unit conversions are written out (GH/s / 1000 = TH/s,
MH/s / 1e6 = TH/s).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent import firmware
from agent.drivers import parsers, state
from agent.drivers.parsers import Reading
from agent.firmware import antminer, avalon, braiins, whatsminer
from agent.transport.jsonfix import BrokenReply, loads_tolerant
from kuat.wire import v1


def load(folder: Path, name: str) -> Any:
    return loads_tolerant((folder / name).read_bytes())


def sample(family: str, reading: Reading) -> v1.MinerSample:
    return state.build_sample("127.0.0.9", reading, family)


def stock_capture(folder: Path, base: str, *, suffix: str = "", stats: str = "stats.json") -> v1.MinerSample:
    """A bmminer-family capture set `<base>_{stats,pools,version}<suffix>` read as the antminer driver reads it."""
    replies = {
        "stats": load(folder, f"{base}_{stats.replace('.json', f'{suffix}.json')}"),
        "pools": load(folder, f"{base}_pools{suffix}.json"),
        "version": load(folder, f"{base}_version{suffix}.json"),
    }
    return sample("antminer", antminer.parse(replies))


def test_every_fixture_decodes(miner_fixtures: Path) -> None:
    files = sorted(p for p in miner_fixtures.iterdir() if p.suffix in (".json", ".txt") and p.name != "README.md")
    assert len(files) >= 59
    for path in files:
        data = loads_tolerant(path.read_bytes())
        assert isinstance(data, dict) and data, path.name


def test_malformed_replies_are_repaired(miner_fixtures: Path) -> None:
    for name in (
        "foreman_antminer_s9_bad_temps_stats.malformed.txt",
        "foreman_antminer_s9_hiveon_stats.malformed.txt",
        "foreman_whatsminer_m20s_new_firmware_summary.malformed.txt",
    ):
        raw = (miner_fixtures / name).read_bytes()
        with pytest.raises(ValueError):
            import json

            json.loads(raw)
        assert isinstance(loads_tolerant(raw + b"\x00"), dict)


def test_repairs_each_known_breakage() -> None:
    assert loads_tolerant(b'{"a":[{"x":1}{"y":2}]}\x00') == {"a": [{"x": 1}, {"y": 2}]}
    assert loads_tolerant('{"a":[,{"x":1},]}') == {"a": [{"x": 1}]}
    assert loads_tolerant('{"a":1,}') == {"a": 1}
    assert loads_tolerant('{"v":"\\\'1.0\\\'"}') == {"v": "'1.0'"}
    assert loads_tolerant('{"t":inf,"u":nan}') == {"t": None, "u": None}
    truncated = loads_tolerant('{"STATUS":[{"STATUS":"S"}],"POOLS":[{"URL":"a"},{"URL":"b","Us')
    assert truncated["POOLS"] == [{"URL": "a"}, {"URL": "b"}]  # cut back to the last complete pair
    with pytest.raises(BrokenReply):
        loads_tolerant(b"\x00")
    with pytest.raises(BrokenReply):
        loads_tolerant("<html>not json</html>")


def test_numbers_as_strings_and_units() -> None:
    from agent.transport.jsonfix import num

    assert num("54997.01") == 54997.01
    assert num("3250 W") == 3250.0
    assert num("") is None and num("inf") is None and num(True) is None


def test_stock_s17_stats(miner_fixtures: Path) -> None:
    s = stock_capture(miner_fixtures, "foreman_antminer_s17")
    # "GHS 5s":"54997.01" (a string!) -> 54.997 TH/s
    assert s.hashrate_ths == pytest.approx(54.997, abs=1e-3)
    assert s.model == "S17 Pro" and s.make == "Antminer" and s.firmware == "bmminer 1.0.0"
    # chain_rate1 "17968.26" GH/s, chain_acn1 48, temp1 50 (board), temp2_1 80 (chip)
    assert s.boards[0].hashrate_ths == pytest.approx(17.96826)
    assert (s.boards[0].chips, s.boards[0].temp_c, s.boards[0].chip_temp_c) == (48, 50.0, 80.0)
    assert s.fans_rpm == [2400, 3000, 3120, 2400]
    assert s.uptime_s == 253447
    assert s.state == v1.MinerState.MINING
    # stock firmware reports no power: estimated = 54.997 TH/s x (2520 W / 56 TH/s = 45 J/TH)
    assert s.power_source == v1.PowerSource.ESTIMATED
    assert s.power_w == pytest.approx(54.997 * 45.0, abs=0.1)
    assert s.pools[0].status == "Alive" and s.pools[0].active


def test_stock_s19_sleeping(miner_fixtures: Path) -> None:
    r = antminer.parse({"stats": load(miner_fixtures, "foreman_antminer_s19_sleeping_stats.json")})
    s = sample("antminer", r)
    # "GHS 5s": 0.0, fans 1560/1560/600/720 (slow), Elapsed 735
    assert s.hashrate_ths == 0.0
    assert s.state == v1.MinerState.SLEEPING
    assert s.fans_rpm == [1560, 1560, 600, 720]
    # chain_acn2/3 = 76 chips, chains 1 and 4 empty; every chip flagged 'x' while asleep is not an error
    assert [b.chips for b in s.boards] == [76, 76]
    assert not any("flagged" in e for e in s.errors)
    # sleeping S19: the model's sleep draw (catalog sleep_w 25 W), estimated
    assert (s.power_w, s.power_source) == (25.0, v1.PowerSource.ESTIMATED)


@pytest.mark.parametrize("base", ["foreman_antminer_s17plus_sleeping", "foreman_antminer_t17plus_sleeping"])
def test_stock_17_series_sleeping(miner_fixtures: Path, base: str) -> None:
    s = stock_capture(miner_fixtures, base)
    assert s.hashrate_ths == 0.0 and s.state == v1.MinerState.SLEEPING
    assert len(s.pools) == 3


@pytest.mark.parametrize("suffix", ["", "_2"])
def test_stock_s19_overheating_is_degraded(miner_fixtures: Path, suffix: str) -> None:
    s = stock_capture(miner_fixtures, "foreman_antminer_s19_overheating", suffix=suffix)
    # 0 GH/s while fans race (5160..6240 rpm) and boards are at 88-92 C: stopped by the heat, not asleep
    assert s.hashrate_ths == 0.0
    assert s.state == v1.MinerState.DEGRADED
    assert s.temp_c is not None and s.temp_c >= 88
    assert any("not hashing" in e for e in s.errors)


def test_stock_s19_really_cold(miner_fixtures: Path) -> None:
    s = stock_capture(miner_fixtures, "foreman_antminer_s19_really_cold")
    assert s.model == "S19 Pro" and s.state == v1.MinerState.MINING
    assert s.hashrate_ths == pytest.approx(110.7868, abs=1e-3)
    assert s.temp_c == 22.0  # hottest board: temp1..3 = 22, 20, 21


def test_hiveon_s9_malformed_stats(miner_fixtures: Path) -> None:
    s = stock_capture(miner_fixtures, "foreman_antminer_s9_hiveon", stats="stats.malformed.txt")
    # "GHS 5s":"11781.40" -> 11.7814 TH/s; chains 6..8 (of 16) are the fitted ones, 63 chips each
    assert s.hashrate_ths == pytest.approx(11.7814)
    assert s.model == "S9" and s.firmware is not None and s.firmware.startswith("Hiveon")
    assert [b.chips for b in s.boards] == [63, 63, 63]
    assert [b.hashrate_ths for b in s.boards] == pytest.approx([3.91164, 3.9137, 3.95605])
    assert s.fans_rpm == [3840, 4920]  # fan5, fan6
    # "chain_power":"34.65 (AB)" is no wattage: estimated (98 J/TH)
    assert s.power_source == v1.PowerSource.ESTIMATED


def test_s9_bad_temps(miner_fixtures: Path) -> None:
    r = antminer.parse(
        {
            "stats": load(miner_fixtures, "foreman_antminer_s9_bad_temps_stats.malformed.txt"),
            "version": load(miner_fixtures, "foreman_antminer_s9_bad_temps_version.json"),
        }
    )
    s = sample("antminer", r)
    assert s.model == "S9"  # Type "Antminer S9\nV1.3.58": first line only
    # a broken chip sensor reads -83: dropped, never reported as a temperature
    assert all(b.chip_temp_c is None or b.chip_temp_c > 0 for b in s.boards)
    assert s.state == v1.MinerState.MINING


def test_mskminer_reports_power(miner_fixtures: Path) -> None:
    s = stock_capture(miner_fixtures, "pyasic_mskminer_s19_88_rpc")
    # "total_power": 3358 W -> reported; "GHS 5s": 99989.59
    assert (s.power_w, s.power_source, s.reported_power_w) == (3358.0, v1.PowerSource.REPORTED, 3358.0)
    assert s.hashrate_ths == pytest.approx(99.98959)
    assert [b.chips for b in s.boards] == [88, 88, 88]


def test_s21_rpc_and_web(miner_fixtures: Path) -> None:
    r = antminer.parse(
        {
            "stats": load(miner_fixtures, "protofleet_antminer_s21_rpc_stats_ABBREVIATED.json"),
            "pools": load(miner_fixtures, "protofleet_antminer_s21_rpc_pools.json"),
            "version": load(miner_fixtures, "protofleet_antminer_s21_rpc_version.json"),
        }
    )
    r.merge(antminer.parse_system_info(load(miner_fixtures, "protofleet_antminer_s21_web_get_system_info_cgi.json")))
    s = sample("antminer", r)
    assert s.model == "S21" and s.hashrate_ths == pytest.approx(203.00701)
    assert (s.power_w, s.power_source) == (3250.0, v1.PowerSource.REPORTED)  # "chain_power": "3250 W"
    assert s.serial == "SMTTATUBDJAAI00A5" and s.mac == "02:50:53:09:da:d9"
    assert s.device_id == "02:50:53:09:da:d9"
    # POOLS: one live pool, then two empty slots (URL "", Status "Deed" - the firmware's typo): slots dropped
    assert [(p.url, p.status, p.active) for p in s.pools] == [("stratum+tcp://stratum.braiins.com:3333", "Alive", True)]
    conf = load(miner_fixtures, "protofleet_antminer_s21_web_get_miner_conf_cgi.json")
    assert antminer.parse_miner_conf_sleeping(conf) is False  # bitmain-work-mode "0"


def test_s21_other_replies_parse(miner_fixtures: Path) -> None:
    summary = load(miner_fixtures, "protofleet_antminer_s21_rpc_summary.json")
    assert parsers.pick(parsers.first(summary, "SUMMARY"), "GHS 5s") is not None
    devs = load(miner_fixtures, "protofleet_antminer_s21_rpc_devs.json")
    assert len(parsers.section(devs, "DEVS")) == 1
    config = load(miner_fixtures, "protofleet_antminer_s21_rpc_config.json")
    assert parsers.first(config, "CONFIG")
    assert parsers.first(summary, "SUMMARY")["GHS 5s"] == 203007.01
    assert parsers.first(devs, "DEVS")["Status"] == "Alive"


def test_s21_web_stats_and_summary(miner_fixtures: Path) -> None:
    stats = load(miner_fixtures, "protofleet_antminer_s21_web_stats_cgi.json")
    summary = load(miner_fixtures, "protofleet_antminer_s21_web_summary_cgi.json")
    s = sample("antminer", antminer.parse_antminer_web_stats(stats, summary))
    # rate_5s 206901.8 GH/s -> 206.9018 TH/s; chain rate_real 67293.41 / 68916.75 / 70691.63 GH/s
    assert s.hashrate_ths == pytest.approx(206.9018)
    assert [b.hashrate_ths for b in s.boards] == pytest.approx([67.29341, 68.91675, 70.69163])
    # asic_num 108 = the S21's 108 chips per board; temp_pcb max 68/67/68, temp_chip max 73/72/73
    assert [(b.chips, b.temp_c, b.chip_temp_c, b.ok) for b in s.boards] == [
        (108, 68.0, 73.0, True),
        (108, 67.0, 72.0, True),
        (108, 68.0, 73.0, True),
    ]
    assert (s.model, s.firmware, s.uptime_s, s.fans_rpm) == ("S21", "bmminer uart_trans.1.3", 8152, [7000] * 4)
    assert s.state == v1.MinerState.MINING and s.errors == []  # every summary status is "s"
    broken = {"SUMMARY": [{"status": [{"type": "fans", "status": "e", "code": 7, "msg": "fan lost"}]}]}
    assert antminer.parse_antminer_web_stats(stats, broken).errors == ["fans: fan lost (code 7)"]


def test_braiins_s9(miner_fixtures: Path) -> None:
    replies = {
        k: load(miner_fixtures, f"foreman_antminer_s9_bosplus_{k}.json")
        for k in ("summary", "devs", "temps", "fans", "pools", "version")
    }
    s = sample("braiins", braiins.parse(replies, "S9"))
    # "MHS 1m": 13967276.98800245 MH/s -> 13.967 TH/s
    assert s.hashrate_ths == pytest.approx(13.9673, abs=1e-4)
    assert s.fans_rpm == [2820, 3780]  # FANS RPM, zero fans dropped
    assert [b.temp_c for b in s.boards] == [75.0, 63.0, 70.0]  # TEMPS Board
    assert s.firmware == "Braiins OS 0.2.0-36c56a9363"
    assert firmware.family_from_reply(replies["version"]) == "braiins"


def test_whatsminer_m31s(miner_fixtures: Path) -> None:
    replies = {
        "summary": load(miner_fixtures, "foreman_whatsminer_m31s_new_firmware_summary.json"),
        "edevs": load(miner_fixtures, "foreman_whatsminer_m31s_new_firmware_edevs.json"),
        "pools": load(miner_fixtures, "foreman_whatsminer_m31s_new_firmware_pools.json"),
    }
    s = sample("whatsminer", whatsminer.parse(replies, "M31S"))
    # SUMMARY "Power":3553, "Power Limit":3600, "MHS 1m":77909448.60 -> 77.909 TH/s
    assert (s.power_w, s.power_source, s.power_limit_w) == (3553.0, v1.PowerSource.REPORTED, 3600.0)
    assert s.hashrate_ths == pytest.approx(77.9094, abs=1e-4)
    assert s.firmware == "btminer 20201202.22.REL"  # "'20201202.22.REL'" quotes stripped
    assert s.mac == "c6:06:12:00:2d:63" and s.device_id == "c6:06:12:00:2d:63"
    assert s.fans_rpm == [5700]  # Fan Speed In 5700, Out 0
    assert [b.chips for b in s.boards] == [105, 105, 105]  # Effective Chips
    assert s.boards[1].chip_temp_c == 93.0
    assert "error code 110" in s.errors
    assert s.capabilities.power_target and s.capabilities.power_target_reboots


def test_whatsminer_m20s_malformed_summary(miner_fixtures: Path) -> None:
    replies = {
        "summary": load(miner_fixtures, "foreman_whatsminer_m20s_new_firmware_summary.malformed.txt"),
        "devs": load(miner_fixtures, "foreman_whatsminer_m20s_new_firmware_devs.json"),
        "pools": load(miner_fixtures, "foreman_whatsminer_m20s_new_firmware_pools.json"),
    }
    s = sample("whatsminer", whatsminer.parse(replies, "M20S"))
    # the \' escapes around the firmware version are repaired; "Power":3491, "Power Limit":3500
    assert s.firmware == "btminer 20200917.22.REL"
    assert (s.power_w, s.power_limit_w) == (3491.0, 3500.0)
    assert s.hashrate_ths == pytest.approx(67.26644769, abs=1e-4)  # "MHS 1m":67266447.69
    assert len(s.boards) == 3 and s.fans_rpm == [4950, 4920]


def test_whatsminer_m31s_sleeping_captures(miner_fixtures: Path) -> None:
    status = load(miner_fixtures, "foreman_whatsminer_m31s_sleeping_status.json")
    assert whatsminer.parse_whatsminer_status(status) is True  # "btmineroff":"true"
    # this capture's "pools+summary+edevs" was sent as {"cmd":...}: the firmware refused it
    refused = load(miner_fixtures, "foreman_whatsminer_m31s_sleeping_pools_summary_edevs.json")
    from agent.transport.cgminer import RpcError, check_reply

    with pytest.raises(RpcError):
        check_reply("pools+summary+edevs", refused)
    replies = {
        "summary": load(miner_fixtures, "foreman_whatsminer_m31s_sleeping_summary.json"),
        "edevs": load(miner_fixtures, "foreman_whatsminer_m31s_sleeping_edevs.json"),
        "pools": load(miner_fixtures, "foreman_whatsminer_m31s_sleeping_pools.json"),
        "status": status,
    }
    s = sample("whatsminer", whatsminer.parse(replies, "M31S"))
    # the summary was captured while it still hashed (MHS 1m 85163473.24): hash rate wins over the off flag
    assert s.hashrate_ths == pytest.approx(85.1635, abs=1e-4)
    assert s.state == v1.MinerState.MINING
    idle = whatsminer.parse({"summary": {"SUMMARY": [{"MHS 1m": 0, "Elapsed": 9000}]}, "status": status})
    assert sample("whatsminer", idle).state == v1.MinerState.SLEEPING


def test_avalon_multicommand(miner_fixtures: Path) -> None:
    multi = load(miner_fixtures, "foreman_avalon_10xx_multicommand_pools+summary+stats.json")
    replies = {k: multi[k][0] for k in ("summary", "stats", "pools")}
    s = sample("avalon", avalon.parse(replies))
    # MM ID0: GHSmm[37470.98] -> 37.471 TH/s; MGHS[12362.61 12812.16]; Fan1[2896] Fan2[2927]; TMax[64]
    assert s.hashrate_ths == pytest.approx(37.47098)
    assert [b.hashrate_ths for b in s.boards] == pytest.approx([12.36261, 12.81216])
    assert s.fans_rpm == [2896, 2927] and s.temp_c == 64.0
    assert s.uptime_s == 155 and s.make == "Avalon"


def test_luxos_version_and_atm(miner_fixtures: Path) -> None:
    version = load(miner_fixtures, "luxos_version_testdata.json")
    assert firmware.family_from_reply(version) == "luxos"
    r = firmware.parse_version(version)
    assert r.firmware == "LuxOS 2000.1.1.12345-aaabbbc" and r.model == "A model"
    atm = load(miner_fixtures, "luxos_atm_testdata.json")
    assert parsers.first(atm, "ATM")["MaxProfile"] == "580MHz"


def test_firmware_family_of_each_version_reply(miner_fixtures: Path) -> None:
    expected = {
        "foreman_antminer_s17_version.json": "antminer",
        "foreman_antminer_s9_bosplus_version.json": "braiins",
        "foreman_antminer_s9_hiveon_version.json": "antminer",
        "protofleet_antminer_s21_rpc_version.json": "antminer",
        "pyasic_mskminer_s19_88_rpc_version.json": "antminer",
        "luxos_version_testdata.json": "luxos",
    }
    for name, family in expected.items():
        assert firmware.family_from_reply(load(miner_fixtures, name)) == family, name


def test_outlet_power_overrides_estimate() -> None:
    r = Reading(model="S19j Pro", hashrate_ths=100.0, uptime_s=5000, fans_rpm=[5000])
    s = sample("antminer", r)
    assert s.power_source == v1.PowerSource.ESTIMATED
    metered = state.apply_outlet_power(s, v1.OutletSample(index=3, state=v1.OutletState.ON, power_w=2950.0))
    assert (metered.power_w, metered.power_source) == (2950.0, v1.PowerSource.PDU)
    cut = state.apply_outlet_power(s, v1.OutletSample(index=3, state=v1.OutletState.OFF, power_w=None))
    assert cut.power_w == 0.0
    unmetered = state.apply_outlet_power(s, v1.OutletSample(index=3, state=v1.OutletState.ON))
    assert unmetered.power_source == v1.PowerSource.ESTIMATED


def test_states_from_uptime_and_hash() -> None:
    booting = Reading(model="S19j Pro", hashrate_ths=0.0, uptime_s=30, fans_rpm=[4000])
    assert sample("antminer", booting).state == v1.MinerState.REBOOTING
    ramping = Reading(model="S19j Pro", hashrate_ths=20.0, uptime_s=60, fans_rpm=[4000])
    assert sample("antminer", ramping).state == v1.MinerState.REBOOTING
    weak = Reading(model="S19j Pro", hashrate_ths=20.0, uptime_s=6000, fans_rpm=[4000])
    assert sample("antminer", weak).state == v1.MinerState.DEGRADED
    capped = Reading(model="M30S", hashrate_ths=50.0, uptime_s=6000, power_limit_w=1700, fans_rpm=[4000])
    assert sample("whatsminer", capped).state == v1.MinerState.MINING  # low because capped, not broken
    off = state.offline_sample("127.0.0.9", last=sample("antminer", weak), error="timed out")
    assert off.state == v1.MinerState.OFFLINE and not off.available and off.model == "S19j Pro"
