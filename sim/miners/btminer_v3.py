"""Whatsminer with btminer API v3 (firmware from about 2024.11 on): TCP 4433, length-prefixed JSON, `get.*`/`set.*`.

Framing (as pyasic's BTMinerV3RPCAPI and iaon/ya-whatsminer-cli speak it): a request is a 4-byte little-endian
length and a JSON object `{"cmd": "get.device.info", "param": ...}`; the reply is framed the same way and reads
`{"code": 0, "when": ts, "msg": ..., "desc": cmd}`. Several requests may follow on one connection. `set.*`
commands carry `ts`, `account` and `token` = the first 8 characters of base64(sha256(cmd + password + salt + ts)),
the salt being what `get.device.info` with param "salt" returns. Commands used here: `get.device.info`,
`get.miner.status` (summary / edevs / pools), `set.miner.service` (stop / start / restart),
`set.miner.power_limit` (W) and `set.system.reboot`. Units are TH/s. Assumptions without a capture: error codes
(here -1 "invalid cmd", -2 "invalid param", -4 "token error"), the exact key sets beyond those pyasic 0.79
reads, and that a power limit applies after a restart of the mining service (as API v2's did with a reboot).
Port 4028 is closed on these miners (the v2 API is gone with this firmware).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import secrets
import string
import struct
from collections.abc import Callable
from typing import Any

from sim.miners.pools import cgminer_rows
from sim.miners.readings import Reading, read, shares
from sim.physics import Fault
from sim.runtime import SimMiner

log = logging.getLogger(__name__)

PORT = 4433
FW_VERSION = "20241205.14.Rel"
API_VERSION = "3.0.1"
ACCOUNTS = ("super", "user")
MODEL_CODES = {"M30S": "M30S_V40", "M31S": "M31S_V40", "M50": "M50_VH50", "M60": "M60_VK10"}
INVALID_CMD, INVALID_PARAM, TOKEN_ERROR = -1, -2, -4
Msg = dict[str, Any]


def frame(obj: Any) -> bytes:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return struct.pack("<I", len(body)) + body


def token_for(cmd: str, password: str, salt: str, ts: int) -> str:
    return base64.b64encode(hashlib.sha256(f"{cmd}{password}{salt}{ts}".encode()).digest()).decode()[:8]


def salt_of(miner: SimMiner) -> str:
    salt = miner.proto.get("wm3_salt")
    if not isinstance(salt, str):
        salt = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(8))
        miner.proto["wm3_salt"] = salt
    return salt


def power_limit(miner: SimMiner) -> int:
    limit = miner.proto.get("wm3_power_limit")
    return limit if isinstance(limit, int) else int(math.ceil(miner.phys.spec.nominal_w * 1.01 / 100.0) * 100)


class BtminerV3Api:
    firmware = "btminer3"

    def __init__(self) -> None:
        self.gets: dict[str, Callable[[SimMiner, Reading, Any], Msg | Any]] = {
            "get.device.info": self.device_info, "get.miner.status": self.miner_status,
        }
        self.sets: dict[str, Callable[[SimMiner, Any], str | None]] = {
            "set.miner.service": self.service, "set.miner.power_limit": self.set_power_limit,
            "set.system.reboot": self.reboot,
        }

    def answer(self, miner: SimMiner, request: bytes) -> bytes:
        r = read(miner)
        try:
            body = json.loads(request)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return frame(self.reply(r, "", INVALID_CMD, "invalid json"))
        cmd = str(body.get("cmd", "")) if isinstance(body, dict) else ""
        if cmd in self.gets:
            return frame(self.reply(r, cmd, 0, self.gets[cmd](miner, r, body.get("param"))))
        if cmd in self.sets:
            if not self.authorised(miner, cmd, body):
                return frame(self.reply(r, cmd, TOKEN_ERROR, "token error"))
            if Fault.IGNORE_COMMANDS in miner.phys.faults:
                return frame(self.reply(r, cmd, 0, "ok"))
            error = self.sets[cmd](miner, body.get("param"))
            return frame(self.reply(r, cmd, INVALID_PARAM if error else 0, error or "ok"))
        return frame(self.reply(r, cmd, INVALID_CMD, "invalid cmd"))

    def reply(self, r: Reading, cmd: str, code: int, msg: Any) -> Msg:
        return {"code": code, "when": r.when, "msg": msg, "desc": cmd}

    def authorised(self, miner: SimMiner, cmd: str, body: dict[str, Any]) -> bool:
        account, ts, token = body.get("account"), body.get("ts"), body.get("token")
        if account not in ACCOUNTS or not isinstance(ts, int) or not isinstance(token, str):
            return False
        return token == token_for(cmd, miner.d.api_password, salt_of(miner), ts)

    # ------------------------------------------------------------ reads
    def device_info(self, miner: SimMiner, r: Reading, param: Any) -> Msg:
        if param == "salt":
            return {"salt": salt_of(miner)}
        code = MODEL_CODES.get(miner.phys.spec.key, f"{miner.phys.spec.key}_V10")
        mac = (miner.d.mac or "").upper()
        info: Msg = {
            "network": {"ip": miner.ip, "proto": "dhcp", "netmask": "255.255.255.0", "dns": "", "mac": mac,
                        "gateway": "", "hostname": miner.d.hostname},
            "miner": {"working": "true" if r.hashing else "false", "type": code, "hardware": "H6OS",
                      "miner-sn": miner.serial, "board-num": len(r.board_ths), "cointype": "BTC",
                      **{f"pcbsn{i}": f"{miner.serial[:12]}{i:02d}" for i in range(len(r.board_ths))}},
            "system": {"api": API_VERSION, "platform": "H616", "fwversion": FW_VERSION, "ledstatus": "auto"},
            "power": {"type": "P222B", "hwversion": "V01.00", "swversion": "V01.00.V01.03", "model": "P222B",
                      "iin": round(r.power_w / 230.0, 2), "vin": 230.0, "fanspeed": 7000 if r.hashing else 3000},
            "hardware": {"boards": len(r.board_ths)},
            "error-code": [{str(540 + r.dead_board): str(r.when)}] if r.dead_board >= 0 else [],
        }
        return info

    def miner_status(self, miner: SimMiner, r: Reading, param: Any) -> Msg:
        parts = str(param or "summary").split(",")
        out: Msg = {}
        if "summary" in parts:
            accepted, rejected = shares(miner, r)
            out["summary"] = {
                "elapsed": r.uptime_s if r.hashing else 0, "bootup-time": r.uptime_s,
                "hash-realtime": round(r.ths, 3), "hash-average": round(r.ths, 3),
                "factory-hash": round(r.nominal_ths * miner.phys.hash_mult, 2),
                "power-realtime": round(r.power_w), "power-limit": power_limit(miner),
                "power-rate": round(r.power_w / r.ths, 2) if r.ths > 0 else 0.0,
                "fan-speed-in": r.fans[0], "fan-speed-out": r.fans[1],
                "environment-temperature": float(miner.phys.ambient_c), "chip-temp-max": max(r.chip_temps),
                "board-temperature": r.board_temps, "accepted": accepted, "rejected": rejected,
                "freq-avg": r.mhz, "target-freq": r.mhz, "working": r.hashing,
            }
        if "edevs" in parts:
            out["edevs"] = [
                {"id": i, "slot": i, "hash-average": round(ths, 3), "factory-hash": round(r.nominal_ths / 3, 2),
                 "freq": r.mhz if r.board_alive(i) else 0, "effective-chips": r.chips if r.board_alive(i) else 0,
                 "chip-temp-min": r.board_temps[i], "chip-temp-max": r.chip_temps[i],
                 "chip-temp-avg": round((r.board_temps[i] + r.chip_temps[i]) / 2, 2),
                 "status": "alive" if r.board_alive(i) else "dead"}
                for i, ths in enumerate(r.board_ths)
            ]
        if "pools" in parts:
            out["pools"] = [
                {"id": row["POOL"] + 1, "url": row["URL"], "account": row["User"],
                 "status": "alive" if row["Status"] == "Alive" else "dead", "stratum-active": row["Stratum Active"],
                 "accepted": row["Accepted"], "rejected": row["Rejected"]}
                for row in cgminer_rows(miner, r)
            ]
        return out

    # ------------------------------------------------------------ writes
    def service(self, miner: SimMiner, param: Any) -> str | None:
        if param == "stop":
            miner.phys.sleep()
        elif param == "start":
            miner.phys.wake()
        elif param == "restart":
            miner.phys.reboot()
        else:
            return "invalid param: use start, stop or restart"
        log.info("%s: set.miner.service %s", miner.ip, param)
        return None

    def set_power_limit(self, miner: SimMiner, param: Any) -> str | None:
        try:
            watts = int(param)
        except (TypeError, ValueError):
            return "invalid param: watts"
        if not 100 <= watts <= 99999:
            return "invalid param: watts out of range"
        limit = min(watts, power_limit(miner) if "wm3_power_limit" not in miner.proto else 99999)
        limit = min(limit, int(math.ceil(miner.phys.spec.nominal_w * 1.01 / 100.0) * 100))
        miner.phys.set_power_limit(float(limit), reboot=True)
        miner.proto["wm3_power_limit"] = limit
        log.info("%s: set.miner.power_limit %d W (restarting the mining service to apply it)", miner.ip, limit)
        return None

    def reboot(self, miner: SimMiner, param: Any) -> str | None:
        miner.phys.reboot()
        return None
