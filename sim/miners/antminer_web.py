"""The stock Antminer web API on port 80: `/cgi-bin/*.cgi` behind HTTP digest auth (realm "antMiner Configuration").

Shapes follow protofleet_antminer_s21_web_*.json. Control: `set_miner_conf.cgi` with `miner-mode` 0 (normal),
1 (sleep), 3 (low power, ~25 % underclock); `reboot.cgi`. The work mode is kept in `SimMiner.proto["work_mode"]`
and reported back as `bitmain-work-mode`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from sim.miners.bmminer import COMPILE_TIME, MINER_VERSION, model_name
from sim.miners.http import (
    HttpRequest,
    HttpResponse,
    digest_challenge,
    digest_ok,
    json_response,
    text_response,
)
from sim.miners.pools import configured
from sim.miners.readings import Reading, read
from sim.physics import Fault
from sim.runtime import SimMiner

log = logging.getLogger(__name__)

REALM = "antMiner Configuration"
USER = "root"
LOW_POWER_RATIO = 0.75
WORK_MODES = {0: "normal", 1: "sleep", 3: "low power"}

Page = Callable[[SimMiner, HttpRequest], HttpResponse]


def work_mode(miner: SimMiner) -> int:
    mode = miner.proto.get("work_mode", 0)
    return mode if isinstance(mode, int) else 0


def chain_serial(miner: SimMiner, i: int) -> str:
    return f"{miner.serial[:10]}{i:02d}{miner.serial[-5:]}"


def system_info(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    return json_response({
        "minertype": model_name(miner), "nettype": "DHCP", "netdevice": "eth0",
        "macaddr": (miner.d.mac or "").upper(), "hostname": miner.d.hostname, "ipaddress": miner.ip,
        "netmask": "255.255.255.0", "gateway": "", "dnsservers": "", "system_mode": "GNU/Linux",
        "system_kernel_version": "Linux 4.9.113 #1 SMP PREEMPT Thu Jul 11 17:01:13 CST 2024",
        "system_filesystem_version": COMPILE_TIME, "firmware_type": "Release", "serinum": miner.serial,
    })


def network_info(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    return json_response({
        "nettype": "DHCP", "netdevice": "eth0", "macaddr": (miner.d.mac or "").upper(), "ipaddress": miner.ip,
        "netmask": "255.255.255.0", "conf_nettype": "DHCP", "conf_hostname": miner.d.hostname,
        "conf_ipaddress": "", "conf_netmask": "", "conf_gateway": "", "conf_dnsservers": "",
    })


def miner_conf(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    return json_response({
        "pools": configured(miner), "api-listen": True, "api-network": True,
        "api-groups": "A:stats:pools:devs:summary:version", "api-allow": "A:0/0,W:*",
        "bitmain-fan-ctrl": False, "bitmain-fan-pwm": "100", "bitmain-use-vil": True,
        "bitmain-freq": "200", "bitmain-voltage": "1320", "bitmain-ccdelay": "0", "bitmain-pwth": "3",
        "bitmain-work-mode": str(work_mode(miner)), "bitmain-hashrate-percent": "100", "bitmain-freq-level": "100",
    })


def apply_work_mode(miner: SimMiner, mode: int) -> None:
    phys = miner.phys
    if mode == 1:
        phys.sleep()
    elif mode == 0:
        phys.set_ratio(1.0)
        phys.wake()
    else:
        phys.set_ratio(LOW_POWER_RATIO)
        phys.wake()
    miner.proto["work_mode"] = mode
    log.info("%s: miner-mode %d (%s)", miner.ip, mode, WORK_MODES[mode])


def set_miner_conf(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    try:
        conf = req.json()
        mode = int(conf.get("miner-mode", work_mode(miner))) if isinstance(conf, dict) else -1
    except (ValueError, TypeError, json.JSONDecodeError):
        mode = -1
    if mode not in WORK_MODES:
        return json_response({"stats": "error", "code": "M001", "msg": "Illegal parameters!"})
    if Fault.IGNORE_COMMANDS in miner.phys.faults:
        log.info("%s: set_miner_conf acknowledged and ignored (fault ignore_commands)", miner.ip)
        return json_response({"stats": "success", "code": "M000", "msg": "OK!"})
    pools = conf.get("pools")
    if isinstance(pools, list) and all(isinstance(p, dict) for p in pools):
        miner.proto["pools"] = [{"url": str(p.get("url", "")), "user": str(p.get("user", "")),
                                 "pass": str(p.get("pass", ""))} for p in pools[:3]]
    apply_work_mode(miner, mode)
    return json_response({"stats": "success", "code": "M000", "msg": "OK!"})


def reboot(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    """Reboot; the work mode is kept in the miner's config, so a sleeping miner comes back asleep."""
    if Fault.IGNORE_COMMANDS not in miner.phys.faults:
        miner.phys.reboot()
        if work_mode(miner) == 1:
            miner.phys.sleep()
        log.info("%s: reboot via web (work mode %d)", miner.ip, work_mode(miner))
    return json_response({"stats": "success", "code": "R000", "msg": "OK!"})


def blink_status(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    return json_response({"blink": bool(miner.proto.get("blink", False))})


def blink(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    try:
        on = str(req.json().get("blink", "false")).lower() == "true"
    except (ValueError, AttributeError, json.JSONDecodeError):
        return json_response({"code": "B001", "msg": "Illegal parameters!"})
    miner.proto["blink"] = on
    return json_response({"code": "B000" if on else "B100", "msg": "OK!"})


def web_status(r: Reading) -> list[dict[str, Any]]:
    """The summary.cgi health list; anything but "s" is an error pyasic reports."""
    rate_ok = r.dead_board < 0
    temp_ok = max(r.chip_temps) < 90
    return [
        {"type": "rate", "status": "s" if rate_ok else "e", "code": 0 if rate_ok else 131,
         "msg": "" if rate_ok else f"chain {r.dead_board + 1} lost"},
        {"type": "network", "status": "s", "code": 0, "msg": ""},
        {"type": "fans", "status": "s", "code": 0, "msg": ""},
        {"type": "temp", "status": "s" if temp_ok else "e", "code": 0 if temp_ok else 103,
         "msg": "" if temp_ok else "chip temperature too high"},
    ]


def info(miner: SimMiner) -> dict[str, Any]:
    return {"miner_version": MINER_VERSION, "CompileTime": COMPILE_TIME, "type": model_name(miner)}


def summary(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    r = read(miner)
    ghs = round(r.ghs, 2)
    return json_response({
        "STATUS": [{"STATUS": "S", "When": r.when, "Msg": "summary", "Code": 0, "Description": ""}],
        "INFO": info(miner),
        "SUMMARY": [{"elapsed": r.uptime_s, "rate_5s": ghs, "rate_30m": ghs, "rate_avg": ghs,
                     "rate_ideal": round(r.nominal_ths * r.ratio * 1000.0, 2), "rate_unit": "GH/s", "hw_all": 0,
                     "bestshare": 0, "status": web_status(r)}],
    })


def _four(t: float, alive: bool, offsets: tuple[int, int, int, int]) -> list[int]:
    return [round(t + d) if alive else 0 for d in offsets]


def stats(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    r = read(miner)
    chains = []
    for i, ths in enumerate(r.board_ths):
        alive = r.board_alive(i)
        t = r.board_temps[i]
        chains.append({
            "index": i, "freq_avg": r.mhz if alive else 0,
            "rate_ideal": round(r.nominal_ths * r.ratio * 1000.0 / len(r.board_ths), 2),
            "rate_real": round(ths * 1000.0, 2), "asic_num": r.chips if alive else 0,
            "temp_pic": _four(t, alive, (-10, -10, 4, 4)), "temp_pcb": _four(t, alive, (0, 0, 14, 14)),
            "temp_chip": _four(t, alive, (5, 5, 19, 19)), "hw": 0, "sn": chain_serial(miner, i), "hwp": 0.0,
        })
    ghs = round(r.ghs, 2)
    return json_response({
        "STATUS": {"STATUS": "S", "when": r.when, "Msg": "stats", "api_version": "1.0.0"},
        "INFO": info(miner),
        "STATS": [{"elapsed": r.uptime_s, "rate_5s": ghs, "rate_30m": ghs, "rate_avg": ghs,
                   "rate_ideal": round(r.nominal_ths * r.ratio * 1000.0, 2), "rate_unit": "GH/s",
                   "chain_num": len(chains), "fan_num": len(r.fans), "fan": r.fans,
                   "psu": {"index": 0, "status": "ok"}, "hwp_total": 0.0, "chain": chains}],
    })


PAGES: dict[str, Page] = {
    "/cgi-bin/get_system_info.cgi": system_info,
    "/cgi-bin/get_network_info.cgi": network_info,
    "/cgi-bin/get_miner_conf.cgi": miner_conf,
    "/cgi-bin/set_miner_conf.cgi": set_miner_conf,
    "/cgi-bin/summary.cgi": summary,
    "/cgi-bin/stats.cgi": stats,
    "/cgi-bin/reboot.cgi": reboot,
    "/cgi-bin/get_blink_status.cgi": blink_status,
    "/cgi-bin/blink.cgi": blink,
}

NOT_FOUND = "<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>"
UNAUTHORIZED = "<html><head><title>401 Unauthorized</title></head><body><h1>401 Unauthorized</h1></body></html>"


def handle(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    """Every path needs digest auth (the real UI too); unknown paths are 404 once authenticated."""
    password = miner.d.web_password
    if not digest_ok(req, REALM, USER, password):
        return HttpResponse(401, UNAUTHORIZED.encode(), "text/html",
                            {"WWW-Authenticate": digest_challenge(REALM)})
    page = PAGES.get(req.path)
    if page is None:
        return text_response(404, NOT_FOUND)
    return page(miner, req)
