"""Braiins OS+ on an Antminer: the legacy cgminer RPC (BOSminer) on 4028 and the public REST API on 80.

RPC shapes follow foreman_antminer_s9_bosplus_{version,summary,devs,temps,fans,pools}.json (MH/s; `version` names
BOSminer+; temps per board); `tunerstatus` (no capture) follows what Kuat and pyasic read (`PowerLimit`,
`ApproximateMinerPowerConsumption`). REST (paths as the Braiins OS public API v1, learnt from public clients; no
capture here, so bodies beyond the fields used are an assumption): `POST /api/v1/auth/login`
`{"username","password"}` -> `{"token","timeout_s"}`, then header `authorization: <token>` (no "Bearer");
`PUT /api/v1/actions/pause|resume|reboot`; `PUT /api/v1/performance/power-target {"watt": N}` (applies without a
reboot: the tuner retunes); `GET /api/v1/miner/details` (serial, MAC, model, version); `GET /api/v1/hashboards`;
`POST /api/v1/hashboards/enable {"enable": bool, "hashboard_ids": ["1", ...]}` (ids from 1).
"""

from __future__ import annotations

import json
import logging
import math
import secrets

from sim.miners.cgminer import CgminerApi, Reply, Request
from sim.miners.http import HttpRequest, HttpResponse, json_response
from sim.miners.pools import cgminer_rows
from sim.miners.readings import Reading, read, shares
from sim.physics import Fault
from sim.runtime import SimMiner

log = logging.getLogger(__name__)

BOS_VERSION = "23.08.1"
DESCRIPTION = f"BOSminer+ {BOS_VERSION}"
TOKEN_TTL_S = 3600
USER = "root"


def power_target(miner: SimMiner) -> int:
    target = miner.proto.get("bos_target")
    return target if isinstance(target, int) else math.floor(miner.phys.spec.nominal_w)


class BraiinsApi(CgminerApi):
    firmware = "braiins"
    description = DESCRIPTION

    def __init__(self) -> None:
        super().__init__()
        self.commands = {"version": self.version, "summary": self.summary, "devs": self.devs, "temps": self.temps,
                         "fans": self.fans, "pools": self.pools, "tunerstatus": self.tunerstatus,
                         "pause": self.pause, "resume": self.resume}

    def version(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        return self.reply(r, 22, "BOSminer+ versions", "VERSION", [{"API": "3.7", "BOSminer+": BOS_VERSION}])

    def summary(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        accepted, rejected = shares(miner, r)
        mhs = r.mhs
        item = {"Accepted": accepted, "Best Share": 65536, "Device Hardware%": 0.0, "Device Rejected%": 0.0,
                "Difficulty Accepted": float(accepted * 65536), "Difficulty Rejected": float(rejected * 65536),
                "Difficulty Stale": 0.0, "Discarded": 0, "Elapsed": r.uptime_s, "Found Blocks": 0,
                "Get Failures": 0, "Getworks": accepted // 2, "Hardware Errors": 0, "Last getwork": r.when,
                "Local Work": accepted * 112, "MHS 15m": mhs, "MHS 1m": mhs, "MHS 24h": mhs, "MHS 5m": mhs,
                "MHS 5s": mhs, "MHS av": mhs, "Network Blocks": 0, "Pool Rejected%": 0.0, "Pool Stale%": 0.0,
                "Rejected": rejected, "Remote Failures": 0, "Stale": 0, "Total MH": float(mhs * r.uptime_s),
                "Utility": 0.0, "Work Utility": 0.0}
        return self.reply(r, 11, "Summary", "SUMMARY", [item])

    def devs(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        items = []
        for i, ths in enumerate(r.board_ths):
            on = i not in miner.phys.disabled_boards
            mhs = ths * 1e6
            items.append({"ASC": i, "Accepted": 0, "Device Elapsed": r.uptime_s, "Device Hardware%": 0.0,
                          "Enabled": "Y" if on else "N", "Hardware Errors": 0, "ID": 6 + i, "MHS 15m": mhs,
                          "MHS 1m": mhs, "MHS 5m": mhs, "MHS 5s": mhs, "MHS av": mhs, "Name": "",
                          "Nominal MHS": r.nominal_ths * 1e6 / len(r.board_ths),
                          "Status": "Alive" if on and r.board_alive(i) else ("Disabled" if not on else "Dead"),
                          "Temperature": r.board_temps[i]})
        return self.reply(r, 9, f"{len(items)} ASC(s)", "DEVS", items)

    def temps(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        items = [{"Board": r.board_temps[i], "Chip": r.chip_temps[i], "ID": 6 + i, "TEMP": i}
                 for i in range(len(r.board_ths))]
        return self.reply(r, 201, f"{len(items)} Temp(s)", "TEMPS", items)

    def fans(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        items = [{"FAN": i, "ID": i, "RPM": rpm, "Speed": min(100, rpm * 100 // 6600)} for i, rpm in enumerate(r.fans)]
        return self.reply(r, 202, f"{len(items)} Fan(s)", "FANS", items)

    def pools(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        rows = cgminer_rows(miner, r)
        return self.reply(r, 7, f"{len(rows)} Pool(s)", "POOLS", rows)

    def tunerstatus(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        item = {"ApproximateChainPowerConsumption": round(r.power_w * 0.95),
                "ApproximateMinerPowerConsumption": round(r.power_w), "DynamicPowerScaling": "Disabled",
                "PowerLimit": power_target(miner), "TunerChainStatus": [], "TunerMode": "PowerTarget"}
        return self.reply(r, 21, "Tuner status", "TUNERSTATUS", [item])

    def pause(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        miner.phys.sleep()
        return {"STATUS": [self.status(r, 1, "Pause")], "PAUSE": [True], "id": 1}

    def resume(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        miner.phys.wake()
        return {"STATUS": [self.status(r, 1, "Resume")], "RESUME": [True], "id": 1}


# ------------------------------------------------------------------ the public REST API (port 80)


def _tokens(miner: SimMiner) -> dict[str, float]:
    tokens = miner.proto.setdefault("bos_tokens", {})
    return tokens if isinstance(tokens, dict) else {}


def _error(status: int, message: str) -> HttpResponse:
    return json_response({"code": status, "message": message}, status)


def handle(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    now = miner.phys.clock.now()
    if (req.method, req.path) == ("POST", "/api/v1/auth/login"):
        try:
            body = req.json()
        except (ValueError, json.JSONDecodeError):
            return _error(400, "invalid JSON")
        if not isinstance(body, dict) or body.get("username") != USER or body.get("password") != miner.d.web_password:
            return _error(401, "invalid credentials")
        token = secrets.token_urlsafe(12)
        _tokens(miner)[token] = now + TOKEN_TTL_S
        return json_response({"token": token, "timeout_s": TOKEN_TTL_S})
    token = req.headers.get("authorization", "")
    if _tokens(miner).get(token, 0.0) <= now:
        return _error(401, "unauthenticated")
    route = ROUTES.get((req.method, req.path))
    if route is None:
        return _error(404, "not found")
    if Fault.IGNORE_COMMANDS in miner.phys.faults and req.method != "GET":
        return json_response({})
    return route(miner, req)


def pause(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    miner.phys.sleep()
    return json_response(True)


def resume(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    miner.phys.wake()
    return json_response(True)


def reboot(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    miner.phys.reboot()
    return json_response({})


def set_power_target(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    try:
        watt = int(req.json().get("watt"))
    except (ValueError, TypeError, AttributeError, json.JSONDecodeError):
        return _error(400, "watt: an integer is required")
    lo, hi = int(miner.phys.spec.min_power_w), math.floor(miner.phys.spec.nominal_w)
    if not lo <= watt <= hi:
        return _error(400, f"new power target '{watt}' is out-of-range (min: Some({lo}), max: Some({hi}))")
    miner.phys.set_power_limit(float(watt))
    miner.proto["bos_target"] = watt
    log.info("%s: Braiins power target %d W", miner.ip, watt)
    return json_response({"watt": watt})


def details(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    r = read(miner)
    return json_response({
        "uid": miner.serial[-16:], "serial_number": miner.serial, "hostname": miner.d.hostname,
        "mac_address": (miner.d.mac or "").lower(), "platform": 2, "bos_mode": 1,
        "miner_identity": {"brand": 1, "name": f"Antminer {miner.phys.spec.key}",
                           "miner_model": f"Antminer {miner.phys.spec.key}"},
        "bos_version": {"current": BOS_VERSION, "major": "23", "bos_plus": True},
        "status": 3 if r.sleeping else 2, "system_uptime_s": r.uptime_s,
    })


def hashboards(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    r = read(miner)
    return json_response({"hashboards": [
        {"id": str(i + 1), "enabled": i not in miner.phys.disabled_boards,
         "chips_count": miner.phys.spec.chips_per_board,
         "board_temp": {"degree_c": r.board_temps[i]}, "highest_chip_temp": {"degree_c": r.chip_temps[i]},
         "stats": {"real_hashrate": {"last_5s": {"gigahash_per_second": round(ths * 1000, 2)}}}}
        for i, ths in enumerate(r.board_ths)]})


def enable_hashboards(miner: SimMiner, req: HttpRequest) -> HttpResponse:
    try:
        body = req.json()
        enable = body["enable"]
        ids = {int(x) - 1 for x in body["hashboard_ids"]}
    except (ValueError, TypeError, KeyError, json.JSONDecodeError):
        return _error(400, "enable (bool) and hashboard_ids (list of ids) are required")
    if not isinstance(enable, bool) or not ids <= set(range(miner.phys.spec.boards)):
        return _error(400, f"unknown hashboard id in {sorted(i + 1 for i in ids)}")
    miner.phys.set_boards_enabled(ids, enable)
    log.info("%s: hash boards %s %s", miner.ip, sorted(i + 1 for i in ids), "on" if enable else "off")
    return json_response({"hashboards": [{"id": str(i + 1), "is_enabled": enable} for i in sorted(ids)]})


ROUTES = {
    ("PUT", "/api/v1/actions/pause"): pause, ("PUT", "/api/v1/actions/resume"): resume,
    ("PUT", "/api/v1/actions/reboot"): reboot, ("PUT", "/api/v1/performance/power-target"): set_power_target,
    ("GET", "/api/v1/miner/details"): details, ("GET", "/api/v1/hashboards"): hashboards,
    ("POST", "/api/v1/hashboards/enable"): enable_hashboards,
}
