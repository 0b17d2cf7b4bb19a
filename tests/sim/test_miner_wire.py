"""Raw-socket conversations with the simulated miners, compared with real captures (../shared/fixtures/miners).

For each firmware: the same keys, value types and units as the capture, a NUL-terminated reply, one request per
connection; the quirks on demand (broken JSON, numbers as strings, timeouts, resets, ignored commands); and control
through the firmware's own channel (bmminer web digest API, LuxOS sessions, Whatsminer encrypted writes).
Runs without root: port offset 30000 on a random 127.N block.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyasic.rpc.btminer import TokenData, _crypt, create_privileged_cmd, parse_btminer_priviledge_data

from kuat.catalog import hashrate_at_power
from sim.physics import Fault
from sim.runtime import SimMiner
from tests.sim.conftest import RunningSite, StartSite, decode, rpc, rpc_raw, until

OFFSET = 30000


def load(fixtures: Path, name: str) -> Any:
    return json.loads((fixtures / name).read_text())


def assert_same_shape(ours: dict[str, Any], real: dict[str, Any], where: str,
                      skip: Callable[[str], bool] = lambda _k: False) -> None:
    """Same key set and, key by key, the same JSON type (int, float, str, bool, list, dict) as the capture."""
    ours_keys = {k for k in ours if not skip(k)}
    real_keys = {k for k in real if not skip(k)}
    missing, extra = sorted(real_keys - ours_keys), sorted(ours_keys - real_keys)
    assert not missing and not extra, f"{where}: missing {missing}, extra {extra}"
    wrong = {k: (type(ours[k]).__name__, type(real[k]).__name__) for k in real_keys
             if type(ours[k]) is not type(real[k])}
    assert not wrong, f"{where}: types differ (ours, real): {wrong}"


def assert_reply_shape(ours: dict[str, Any], real: dict[str, Any], section: str, where: str,
                       skip: Callable[[str], bool] = lambda _k: False) -> None:
    assert set(ours) == set(real), f"{where}: top-level keys {sorted(ours)} != {sorted(real)}"
    assert_same_shape(ours["STATUS"][0], real["STATUS"][0], f"{where} STATUS")
    assert ours["STATUS"][0]["STATUS"] == "S"
    assert ours["id"] == 1
    assert_same_shape(ours[section][0], real[section][0], f"{where} {section}[0]", skip)


@pytest.fixture
async def site(sim_site: StartSite) -> RunningSite:
    return await sim_site(port_offset=OFFSET, slow_s=0.4)


# ---------------------------------------------------------------------------------------------------- framing
async def test_one_request_per_connection_nul_terminated(site: RunningSite) -> None:
    m = site.miner("bmminer")
    reader, writer = await asyncio.open_connection(m.ip, site.rpc_port)
    try:
        writer.write(b'{"command":"version"}')
        await writer.drain()
        first = await asyncio.wait_for(reader.read(), 10)  # read() returns only at EOF: the miner closed
        assert first.endswith(b"\x00")
        assert json.loads(first[:-1])["VERSION"][0]["Type"] == "Antminer S19j Pro"
        writer.write(b'{"command":"summary"}')  # a second request on the same connection gets nothing
        try:
            await writer.drain()
            rest = await asyncio.wait_for(reader.read(), 2)
        except ConnectionError:
            rest = b""
        assert rest == b""
    finally:
        writer.close()


async def test_text_form_and_invalid_command(site: RunningSite) -> None:
    m = site.miner("bmminer")
    text = decode(await rpc_raw(m.ip, site.rpc_port, "summary|"))
    assert text["SUMMARY"][0]["GHS 5s"] > 0
    bad = await rpc(m.ip, site.rpc_port, "no-such-command")
    assert bad["STATUS"][0]["STATUS"] == "E" and bad["STATUS"][0]["Code"] == 14
    assert bad["STATUS"][0]["Msg"] == "Invalid command"
    reader, writer = await asyncio.open_connection(m.ip, site.rpc_port)
    try:
        writer.write(b'{"command": "summ')  # truncated JSON, then the client stops sending
        writer.write_eof()
        broken = decode(await asyncio.wait_for(reader.read(), 10))
    finally:
        writer.close()
    assert broken["STATUS"][0]["STATUS"] == "E" and "command" in broken["STATUS"][0]["Msg"]


# ---------------------------------------------------------------------------------------------------- stock bmminer
@pytest.mark.parametrize(("command", "section", "fixture"), [
    ("version", "VERSION", "foreman_antminer_s19_sleeping_version.json"),
    ("summary", "SUMMARY", "protofleet_antminer_s21_rpc_summary.json"),
    ("pools", "POOLS", "protofleet_antminer_s21_rpc_pools.json"),
    ("devs", "DEVS", "protofleet_antminer_s21_rpc_devs.json"),
    ("config", "CONFIG", "protofleet_antminer_s21_rpc_config.json"),
])
async def test_bmminer_rpc_matches_captures(site: RunningSite, miner_fixtures: Path, command: str, section: str,
                                            fixture: str) -> None:
    m = site.miner("bmminer")
    assert_reply_shape(await rpc(m.ip, site.rpc_port, command), load(miner_fixtures, fixture), section,
                       f"bmminer {command}")


async def test_bmminer_stats_matches_s19_capture_and_physics(site: RunningSite, miner_fixtures: Path) -> None:
    m = site.miner("bmminer")
    ours = await rpc(m.ip, site.rpc_port, "stats")
    real = load(miner_fixtures, "foreman_antminer_s19_overheating_stats.json")
    assert_same_shape(ours["STATS"][0], real["STATS"][0], "stats STATS[0]")
    assert_same_shape(ours["STATS"][1], real["STATS"][1], "stats STATS[1]")
    body = ours["STATS"][1]
    # units: GH/s, per-chain strings in GH/s, chips per board from the catalogue
    assert body["GHS 5s"] == pytest.approx(m.phys.hashrate_ths() * 1000, rel=1e-3)
    assert sum(float(body[f"chain_rate{i}"]) for i in (1, 2, 3)) == pytest.approx(body["GHS 5s"], rel=1e-3)
    assert [body[f"chain_acn{i}"] for i in (1, 2, 3, 4)] == [126, 126, 126, 0]
    assert body["rate_unit"] == "GH"
    assert [body[f"fan{i}"] for i in (1, 2, 3, 4)] == m.phys.fans_rpm()


async def test_bmminer_multi_command(site: RunningSite, miner_fixtures: Path) -> None:
    m = site.miner("bmminer")
    ours = await rpc(m.ip, site.rpc_port, "summary+pools+stats")
    real = load(miner_fixtures, "foreman_avalon_10xx_multicommand_pools+summary+stats.json")
    assert set(ours) == set(real) == {"summary", "pools", "stats", "id"}
    for cmd, section in (("summary", "SUMMARY"), ("pools", "POOLS"), ("stats", "STATS")):
        assert isinstance(ours[cmd], list) and len(ours[cmd]) == 1
        assert section in ours[cmd][0] and ours[cmd][0]["STATUS"][0]["STATUS"] == "S"


async def test_bmminer_sleeping_reports_zero_and_slow_fans(site: RunningSite, miner_fixtures: Path) -> None:
    m = site.miner("bmminer")
    m.phys.sleep()
    await until(lambda: m.phys.phase() == "sleeping", "sleep")
    body = (await rpc(m.ip, site.rpc_port, "stats"))["STATS"][1]
    real = load(miner_fixtures, "foreman_antminer_s19_sleeping_stats.json")["STATS"][1]
    assert body["GHS 5s"] == real["GHS 5s"] == 0.0
    assert body["chain_rate1"] == "0.00"
    assert max(body[f"fan{i}"] for i in (1, 2, 3, 4)) <= 1600  # sleeping capture: 600..1560 rpm


# ---------------------------------------------------------------------------------------------------- bmminer web
async def test_antminer_web_digest_and_captures(site: RunningSite, miner_fixtures: Path) -> None:
    m = site.miner("bmminer")
    base = f"http://{m.ip}:{site.web_port}"
    async with httpx.AsyncClient(timeout=10) as client:
        anon = await client.get(f"{base}/")
        assert anon.status_code == 401
        assert anon.headers["www-authenticate"].startswith('Digest realm="antMiner Configuration"')
        wrong = await client.get(f"{base}/cgi-bin/get_system_info.cgi", auth=httpx.DigestAuth("root", "nope"))
        assert wrong.status_code == 401
        auth = httpx.DigestAuth("root", "root")
        for page, fixture in (("get_system_info", "protofleet_antminer_s21_web_get_system_info_cgi.json"),
                              ("get_miner_conf", "protofleet_antminer_s21_web_get_miner_conf_cgi.json"),
                              ("summary", "protofleet_antminer_s21_web_summary_cgi.json"),
                              ("stats", "protofleet_antminer_s21_web_stats_cgi.json")):
            resp = await client.get(f"{base}/cgi-bin/{page}.cgi", auth=auth)
            assert resp.status_code == 200, page
            ours, real = resp.json(), load(miner_fixtures, fixture)
            assert_same_shape(ours, real, page)
            if page == "summary":
                assert_same_shape(ours["SUMMARY"][0], real["SUMMARY"][0], "summary.cgi SUMMARY[0]")
            if page == "stats":
                assert isinstance(ours["STATUS"], dict)  # an object here, not a list (as captured)
                assert_same_shape(ours["STATS"][0]["chain"][0], real["STATS"][0]["chain"][0], "stats.cgi chain")
        info = (await client.get(f"{base}/cgi-bin/get_system_info.cgi", auth=auth)).json()
        assert (info["serinum"], info["macaddr"], info["minertype"]) == (m.serial, m.d.mac.upper(), "Antminer S19j Pro")
        missing = await client.get(f"{base}/cgi-bin/nothing.cgi", auth=auth)
        assert missing.status_code == 404


async def set_mode(client: httpx.AsyncClient, base: str, mode: int) -> dict[str, Any]:
    resp = await client.post(f"{base}/cgi-bin/set_miner_conf.cgi", auth=httpx.DigestAuth("root", "root"),
                             json={"miner-mode": mode, "freq-level": "100"})
    assert resp.status_code == 200
    return dict(resp.json())


async def work_mode(client: httpx.AsyncClient, base: str) -> str:
    resp = await client.get(f"{base}/cgi-bin/get_miner_conf.cgi", auth=httpx.DigestAuth("root", "root"))
    return str(resp.json()["bitmain-work-mode"])


async def test_antminer_web_miner_modes_drive_physics(site: RunningSite) -> None:
    m = site.miner("bmminer")
    base = f"http://{m.ip}:{site.web_port}"
    full_w = m.phys.power_w()
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await set_mode(client, base, 1))["code"] == "M000"
        await until(lambda: m.phys.phase() == "sleeping", "sleep")
        assert await work_mode(client, base) == "1"
        assert m.phys.power_w() < 100
        await set_mode(client, base, 3)
        await until(lambda: m.phys.phase() == "mining", "wake into low power")
        assert await work_mode(client, base) == "3"
        assert m.phys.power_w() < 0.75 * full_w  # 25 % underclock saves more than 25 % power
        await set_mode(client, base, 0)
        assert m.phys.power_w() == pytest.approx(full_w, rel=1e-6)
        bad = await client.post(f"{base}/cgi-bin/set_miner_conf.cgi", auth=httpx.DigestAuth("root", "root"),
                                json={"miner-mode": 7})
        assert bad.json()["stats"] == "error" and await work_mode(client, base) == "0"
        await client.get(f"{base}/cgi-bin/reboot.cgi", auth=httpx.DigestAuth("root", "root"))
        assert m.phys.phase() == "booting"
        await until(lambda: m.phys.phase() == "mining", "boot")
        await set_mode(client, base, 1)
        await client.get(f"{base}/cgi-bin/reboot.cgi", auth=httpx.DigestAuth("root", "root"))
        await until(lambda: m.phys.phase() == "sleeping", "reboot into the saved sleep mode")
        assert await work_mode(client, base) == "1"


async def test_ignore_commands_acknowledges_and_changes_nothing(site: RunningSite) -> None:
    m = site.miner("bmminer")
    m.phys.inject(Fault.IGNORE_COMMANDS)
    base = f"http://{m.ip}:{site.web_port}"
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await set_mode(client, base, 1))["stats"] == "success"
        assert await work_mode(client, base) == "0"
    assert m.phys.phase() == "mining"
    wm = site.miner("btminer")
    wm.phys.inject(Fault.IGNORE_COMMANDS)
    reply = await wm_write(wm, site.rpc_port, {"cmd": "power_off", "respbefore": "true"})
    assert reply["Msg"] == "API command OK"
    await asyncio.sleep(0.3)  # longer than the 0.2 s it takes to fall asleep
    assert wm.phys.phase() == "mining"


# ---------------------------------------------------------------------------------------------------- quirks
async def test_broken_json_like_the_captures(site: RunningSite, miner_fixtures: Path) -> None:
    bm = site.miner("bmminer")
    bm.phys.inject(Fault.BROKEN_JSON)
    raw = (await rpc_raw(bm.ip, site.rpc_port, {"command": "stats"}))[:-1].decode()
    real = (miner_fixtures / "foreman_antminer_s9_hiveon_stats.malformed.txt").read_text()
    assert '}{"STATS":0' in raw and '}{"STATS":0' in real
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    assert json.loads(raw.replace("}{", "},{"))["STATS"][1]["ID"] == "BTM_SOC0"

    wm = site.miner("btminer")
    wm.phys.inject(Fault.BROKEN_JSON)
    raw = (await rpc_raw(wm.ip, site.rpc_port, {"command": "summary"}))[:-1].decode()
    real = (miner_fixtures / "foreman_whatsminer_m20s_new_firmware_summary.malformed.txt").read_text()
    assert re.search(r'"Firmware Version":"\\\'\d{8}\.\d+\.REL\\\'"', raw)
    assert re.search(r'"Firmware Version":"\\\'\d{8}\.\d+\.REL\\\'"', real)
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)


async def test_string_numbers_like_s17_pro(site: RunningSite, miner_fixtures: Path) -> None:
    m = site.miner("bmminer")
    m.phys.inject(Fault.STRING_NUMBERS)
    ours = (await rpc(m.ip, site.rpc_port, "stats"))["STATS"][1]["GHS 5s"]
    real = load(miner_fixtures, "foreman_antminer_s17_stats.json")["STATS"][1]["GHS 5s"]
    assert isinstance(ours, str) and isinstance(real, str)
    assert re.fullmatch(r"\d+\.\d\d", ours) and re.fullmatch(r"\d+\.\d\d", real)
    assert float(ours) == pytest.approx(m.phys.hashrate_ths() * 1000, rel=1e-3)


async def test_unreachable_miners_reset_and_timeouts_stay_silent(site: RunningSite) -> None:
    offline, unplugged, silent = site.miner("bmminer", index=0), site.miner("bmminer", index=1), site.miner("luxos")
    offline.phys.inject(Fault.OFFLINE)
    unplugged.phys.set_powered(False)
    silent.phys.inject(Fault.TIMEOUT)
    for m in (offline, unplugged):
        try:
            data = await rpc_raw(m.ip, site.rpc_port, {"command": "summary"})
        except ConnectionError:
            data = b""
        assert data == b"", f"{m.ip} answered while unreachable"
    reader, writer = await asyncio.open_connection(silent.ip, site.rpc_port)
    try:
        writer.write(b'{"command":"summary"}')
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 1.0)
    finally:
        writer.close()
    offline.phys.inject(Fault.OFFLINE, on=False)
    assert "SUMMARY" in await rpc(offline.ip, site.rpc_port, "summary")


async def test_slow_miner_answers_late_but_whole(site: RunningSite) -> None:
    m = site.miner("btminer")
    m.phys.inject(Fault.SLOW)
    reader, writer = await asyncio.open_connection(m.ip, site.rpc_port)
    try:
        writer.write(b'{"command":"summary"}')
        await writer.drain()
        with pytest.raises(TimeoutError):  # slow_s is 0.4 s: nothing yet after 0.1 s
            await asyncio.wait_for(reader.read(1), 0.1)
        rest = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert "SUMMARY" in decode(rest)


async def test_hashboard_and_overheat_faults_show_in_replies(site: RunningSite) -> None:
    m = site.miner("bmminer")
    before = (await rpc(m.ip, site.rpc_port, "stats"))["STATS"][1]
    m.phys.inject(Fault.HASHBOARD)
    body = (await rpc(m.ip, site.rpc_port, "stats"))["STATS"][1]
    assert (body["chain_acn1"], body["chain_rate1"], body["temp_chip1"]) == (0, "", "0-0-0-0")
    assert body["GHS 5s"] == pytest.approx(before["GHS 5s"] * 2 / 3, rel=1e-3)
    m.phys.inject(Fault.HASHBOARD, on=False)
    m.phys.inject(Fault.OVERHEAT)
    hot = (await rpc(m.ip, site.rpc_port, "stats"))["STATS"][1]
    assert hot["temp2_1"] > before["temp2_1"] + 15  # hotter even though throttled
    assert hot["GHS 5s"] == pytest.approx(before["GHS 5s"] * 0.75, rel=1e-3)  # firmware throttles to 75 %


# ---------------------------------------------------------------------------------------------------- LuxOS
async def test_luxos_matches_captures(site: RunningSite, miner_fixtures: Path) -> None:
    m = site.miner("luxos")
    assert_reply_shape(await rpc(m.ip, site.rpc_port, "version"), load(miner_fixtures, "luxos_version_testdata.json"),
                       "VERSION", "luxos version")
    assert_reply_shape(await rpc(m.ip, site.rpc_port, "atm"), load(miner_fixtures, "luxos_atm_testdata.json"),
                       "ATM", "luxos atm")
    summary = (await rpc(m.ip, site.rpc_port, "summary"))["SUMMARY"][0]
    assert summary["GHS 5s"] == pytest.approx(m.phys.hashrate_ths() * 1000, rel=1e-3)
    power = await rpc(m.ip, site.rpc_port, "power")
    assert power["POWER"][0]["Watts"] == round(m.phys.power_w())


async def test_luxos_sessions_curtail_and_profiles(site: RunningSite) -> None:
    m = site.miner("luxos")
    ip, port = m.ip, site.rpc_port
    refused = await rpc(ip, port, "curtail", "nosession,sleep")
    assert refused["STATUS"][0]["STATUS"] == "E"
    sid = (await rpc(ip, port, "logon"))["SESSION"][0]["SessionID"]
    second = await rpc(ip, port, "logon")
    assert (second["STATUS"][0]["STATUS"], second["STATUS"][0]["Code"]) == ("E", 402)
    assert (await rpc(ip, port, "session"))["SESSION"][0]["SessionID"] == sid

    slept = await rpc(ip, port, "curtail", f"{sid},sleep")
    assert slept["STATUS"][0]["Code"] == 335
    await until(lambda: m.phys.phase() == "sleeping", "LuxOS sleep")
    assert (await rpc(ip, port, "power"))["POWER"][0]["Watts"] == 25  # boards and PSU off
    await rpc(ip, port, "curtail", f"{sid},wakeup")
    await until(lambda: m.phys.phase() == "mining", "LuxOS wake")

    profiles = (await rpc(ip, port, "profiles"))["PROFILES"]
    mhz = [p["Frequency"] for p in profiles]
    assert mhz[0] == 545 and all(a - b == 25 for a, b in itertools.pairwise(mhz))
    target = profiles[3]
    blocked = await rpc(ip, port, "profileset", f"{sid},{target['Profile Name']}")
    assert blocked["STATUS"][0]["STATUS"] == "E"  # ATM must be disabled first
    assert (await rpc(ip, port, "atmset", f"{sid},enabled=false"))["STATUS"][0]["Code"] == 340
    full_w, full_ths = m.phys.power_w(), m.phys.hashrate_ths()
    done = await rpc(ip, port, "profileset", f"{sid},{target['Profile Name']}")
    assert done["PROFILE"][0]["Profile"] == target["Profile Name"]
    assert m.phys.hashrate_ths() == pytest.approx(full_ths * target["Frequency"] / 545, rel=1e-6)
    assert m.phys.power_w() / full_w < m.phys.hashrate_ths() / full_ths  # power falls faster than hash rate
    config = (await rpc(ip, port, "config"))["CONFIG"][0]
    assert config["Profile"] == target["Profile Name"]
    await rpc(ip, port, "logoff", sid)
    assert (await rpc(ip, port, "session"))["SESSION"][0]["SessionID"] == ""


# ---------------------------------------------------------------------------------------------------- Whatsminer
def error_key(k: str) -> bool:
    """Error slots vary with the miner's errors (the capture has three plus two factory ones)."""
    return bool(re.fullmatch(r"(Factory )?Error (Code )?\d+( Time)?", k))


@pytest.mark.parametrize(("command", "section", "fixture", "skip"), [
    ("summary", "SUMMARY", "foreman_whatsminer_m31s_new_firmware_summary.json", error_key),
    ("pools", "POOLS", "foreman_whatsminer_m31s_new_firmware_pools.json", None),
    ("edevs", "DEVS", "foreman_whatsminer_m31s_new_firmware_edevs.json", None),
    ("devs", "DEVS", "foreman_whatsminer_m31s_new_firmware_edevs.json", None),
])
async def test_whatsminer_rpc_matches_captures(site: RunningSite, miner_fixtures: Path, command: str, section: str,
                                               fixture: str, skip: Callable[[str], bool] | None) -> None:
    m = site.miner("btminer")
    ours = await rpc(m.ip, site.rpc_port, command)
    assert_reply_shape(ours, load(miner_fixtures, fixture), section, f"btminer {command}", skip or (lambda _k: False))


async def test_whatsminer_units_and_power(site: RunningSite) -> None:
    m = site.miner("btminer")
    s = (await rpc(m.ip, site.rpc_port, "summary"))["SUMMARY"][0]
    assert s["MHS 1m"] == pytest.approx(m.phys.hashrate_ths() * 1e6, rel=1e-3)  # MH/s
    assert s["Power"] == round(m.phys.power_w())
    assert s["Power Limit"] >= s["Power"]
    assert s["MAC"] == m.d.mac.upper()
    details = (await rpc(m.ip, site.rpc_port, "devdetails"))["DEVDETAILS"]
    assert {d["Model"] for d in details} == {"M30S_V40"} and details[0]["Driver"] == "bitmicro"


async def test_whatsminer_cmd_form_like_capture(site: RunningSite, miner_fixtures: Path) -> None:
    m = site.miner("btminer")
    ours = decode(await rpc_raw(m.ip, site.rpc_port, {"cmd": "pools+summary+edevs"}))
    real = load(miner_fixtures, "foreman_whatsminer_m31s_sleeping_pools_summary_edevs.json")
    assert ours["STATUS"][0]["Code"] == real["STATUS"][0]["Code"] == 24
    assert_same_shape(ours["STATUS"][0], real["STATUS"][0], "cmd-form error")


async def wm_token(m: SimMiner, port: int, password: str = "admin") -> TokenData:
    """What pyasic does: get_token, then md5crypt the password with salt, and key+time with newsalt."""
    msg = (await rpc(m.ip, port, "get_token"))["Msg"]
    key = _crypt(password, "$1$" + msg["salt"] + "$").split("$")[3]
    sign = _crypt(key + msg["time"], "$1$" + msg["newsalt"] + "$").split("$")[3]
    return TokenData(host_sign=sign, host_passwd_md5=key)


async def wm_write(m: SimMiner, port: int, command: dict[str, Any], password: str = "admin") -> dict[str, Any]:
    token = await wm_token(m, port, password)
    raw = await rpc_raw(m.ip, port, create_privileged_cmd(token, dict(command)))
    reply = decode(raw)
    return dict(parse_btminer_priviledge_data(token, reply)) if "enc" in reply else dict(reply)


async def test_whatsminer_encrypted_writes(site: RunningSite, miner_fixtures: Path) -> None:
    m = site.miner("btminer")
    plain = decode(await rpc_raw(m.ip, site.rpc_port, {"cmd": "power_off", "respbefore": "true"}))
    assert plain["STATUS"] == "E"  # writes must be encrypted
    wrong = await wm_write(m, site.rpc_port, {"cmd": "power_off"}, password="not-admin")
    assert wrong["STATUS"] == "E" and m.phys.phase() == "mining"

    bad = await wm_write(m, site.rpc_port, {"cmd": "adjust_power_limit", "power_limit": "lots"})
    assert (bad["STATUS"], bad["Msg"]) == ("E", "invalid power_limit")
    assert m.phys.phase() == "mining" and m.phys.power_limit_w is None  # bad input changes nothing

    off = await wm_write(m, site.rpc_port, {"cmd": "power_off", "respbefore": "true"})
    assert (off["STATUS"], off["Code"], off["Msg"]) == ("S", 131, "API command OK")
    await until(lambda: m.phys.phase() == "sleeping", "Whatsminer power_off")
    status = decode(await rpc_raw(m.ip, site.rpc_port, {"cmd": "status"}))
    assert_same_shape(status, load(miner_fixtures, "foreman_whatsminer_m31s_sleeping_status.json"), "status")
    assert status["Msg"]["btmineroff"] == "true"
    assert (await rpc(m.ip, site.rpc_port, "summary"))["SUMMARY"][0]["MHS 1m"] == 0.0
    await wm_write(m, site.rpc_port, {"cmd": "power_on"})
    await until(lambda: m.phys.phase() == "mining", "Whatsminer power_on")


async def test_whatsminer_power_limit_reboots_and_follows_the_curve(site: RunningSite) -> None:
    m = site.miner("btminer")
    spec = m.phys.spec
    s0 = (await rpc(m.ip, site.rpc_port, "summary"))["SUMMARY"][0]
    limit = 2600
    reply = await wm_write(m, site.rpc_port, {"cmd": "adjust_power_limit", "power_limit": str(limit)})
    assert reply["Msg"] == "API command OK"
    assert m.phys.phase() == "booting"  # the miner reboots to apply a power limit
    await until(lambda: m.phys.phase() == "mining", "reboot after power limit")
    s1 = (await rpc(m.ip, site.rpc_port, "summary"))["SUMMARY"][0]
    assert s1["Power Limit"] == limit
    assert s1["Power"] == pytest.approx(limit, rel=0.01)
    nominal_equiv_w = limit / (m.phys.power_mult * m.phys._temp_factor())
    expected_mhs = hashrate_at_power(spec, nominal_equiv_w) * m.phys.hash_mult * 1e6
    assert s1["MHS 1m"] == pytest.approx(expected_mhs, rel=1e-3)
    cut_power = 1 - s1["Power"] / s0["Power"]
    cut_hash = 1 - s1["MHS 1m"] / s0["MHS 1m"]
    assert 0 < cut_hash < cut_power  # along the curve: hash rate falls less than power
