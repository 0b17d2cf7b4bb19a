"""Whatsminer (btminer, API v2) on 4028: cgminer-style reads plus btminer's own `get_*`/`status` and encrypted writes.

Writes: `get_token` gives salt/newsalt/time; the client derives key = md5crypt(password, salt) and
sign = md5crypt(key + time, newsalt), then sends `{"enc":1,"data": base64(AES-256-ECB(sha256(key), json))}` with
the sign as `token`; the reply is `{"enc": base64(AES(...reply...))}`. Tokens live 30 minutes.
`adjust_power_limit` reboots the miner to apply it; `power_off`/`power_on` stop and start hashing while the control
board stays up. Replies of the btminer-native commands put STATUS as a string (foreman_whatsminer_m31s_sleeping_status).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import secrets
import string
from dataclasses import dataclass
from typing import Any

from Crypto.Cipher import AES
from passlib.hash import md5_crypt

from sim.miners.cgminer import CgminerApi, Reply, Request, dumps
from sim.miners.pools import cgminer_rows, stratum_host
from sim.miners.readings import Reading, shares, stable_int
from sim.physics import Fault
from sim.runtime import SimMiner

log = logging.getLogger(__name__)

FW_VERSION = "20230626.12.REL"
API_VERSION = "whatsminer v2.0.5"
TOKEN_TTL_S = 1800.0
MAX_TOKENS = 32
SALT_CHARS = string.ascii_letters + string.digits
# devdetails `Model` per catalogue model (pyasic drops "_" and the last digit to find the class: M30S_V40 -> M30SV40)
MODEL_CODES = {"M30S": "M30S_V40", "M31S": "M31S_V40", "M50": "M50_VH50", "M60": "M60_VK10"}
WRITE_COMMANDS = {"power_off", "power_on", "adjust_power_limit", "reboot", "restart_btminer", "set_led",
                  "set_low_power", "set_normal_power", "set_high_power", "set_power_pct", "update_pools"}
NATIVE_READS = {"status", "get_version", "get_token", "get_miner_info", "get_psu", "get_error_code"}


@dataclass(frozen=True, slots=True)
class Token:
    sign: str
    key: str  # host_passwd_md5: the md5crypt digest of the password, the AES key's seed
    created: float


def md5crypt_digest(word: str, salt: str) -> str:
    """The digest part of `$1$salt$digest`."""
    return str(md5_crypt.using(salt=salt).hash(word)).split("$")[3]


def aes_for(key: str) -> Any:
    return AES.new(hashlib.sha256(key.encode()).digest(), AES.MODE_ECB)


def encrypt(key: str, obj: Any) -> str:
    raw = dumps(obj).encode()
    raw += b"\0" * (-len(raw) % 16)
    return base64.b64encode(aes_for(key).encrypt(raw)).decode()


def decrypt(key: str, data: str) -> dict[str, Any] | None:
    try:
        raw = aes_for(key).decrypt(base64.b64decode(data))
        obj = json.loads(raw.rstrip(b"\0").decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def default_power_limit(miner: SimMiner) -> int:
    """Factory limit: the PSU-rounded value just above nominal draw (M31S: 3553 W nominal, limit 3600)."""
    return int(math.ceil(miner.phys.spec.nominal_w * 1.01 / 100.0) * 100)


def int_param(cmd: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    """An integer parameter of a write command (sent as a string), or None when absent or out of [lo, hi]."""
    try:
        value = int(str(cmd.get(key, "")))
    except ValueError:
        return None
    return value if lo <= value <= hi else None


def btminer_off(miner: SimMiner) -> bool:
    return bool(miner.proto.get("wm_power_off", False))


class BtminerApi(CgminerApi):
    firmware = "btminer"
    description = "btminer"
    string_number_keys = frozenset({"MHS av", "MHS 5s", "MHS 1m", "MHS 5m", "MHS 15m"})

    def __init__(self) -> None:
        super().__init__()
        self.commands = {
            "summary": self.summary, "pools": self.pools, "devs": self.devs, "edevs": self.devs,
            "devdetails": self.devdetails,
            "status": self.status_cmd, "get_version": self.get_version, "get_token": self.get_token,
            "get_miner_info": self.get_miner_info, "get_psu": self.get_psu, "get_error_code": self.get_error_code,
        }
        self.writes = {
            "power_off": self.power_off, "power_on": self.power_on, "adjust_power_limit": self.adjust_power_limit,
            "reboot": self.reboot, "restart_btminer": self.reboot, "set_led": self.set_led,
            "set_low_power": self.set_mode, "set_normal_power": self.set_mode, "set_high_power": self.set_mode,
            "set_power_pct": self.set_power_pct,
        }

    # ------------------------------------------------------------ native (string-STATUS) replies
    def native(self, r: Reading, code: int, msg: Any, ok: bool = True) -> Reply:
        return {"STATUS": "S" if ok else "E", "When": r.when, "Code": code, "Msg": msg, "Description": API_VERSION}

    def special(self, miner: SimMiner, r: Reading, req: Request) -> str | None:
        """Encrypted writes (`{"enc":1,...}`), plain writes (refused) and the `{"cmd":...}` form."""
        body = req.body
        if "enc" in body and "data" in body:
            return dumps(self.encrypted(miner, r, str(body.get("data", ""))))
        if not req.command and "cmd" in body:
            cmd = str(body["cmd"])
            if cmd in NATIVE_READS:
                return self.render_one(miner, r, Request(cmd, "", body))
            if cmd in WRITE_COMMANDS:
                return dumps(self.native(r, 45, "Permission denied: write commands must be encrypted", ok=False))
            return dumps(self.error(r, 24, "Missing JSON 'command'"))
        if req.command in WRITE_COMMANDS:
            return dumps(self.native(r, 45, "Permission denied: write commands must be encrypted", ok=False))
        return None

    def run(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        if btminer_off(miner) and req.command == "devdetails":
            return self.error(r, 132, "btminer is off")
        return super().run(miner, r, req)

    # ------------------------------------------------------------ tokens and encryption
    def get_token(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        salt = "".join(secrets.choice(SALT_CHARS) for _ in range(8))
        newsalt = "".join(secrets.choice(SALT_CHARS) for _ in range(8))
        t = f"{r.when % 10000:04d}"
        key = md5crypt_digest(miner.d.api_password, salt)
        sign = md5crypt_digest(key + t, newsalt)
        tokens = [tk for tk in self._tokens(miner) if r.when - tk.created < TOKEN_TTL_S][-(MAX_TOKENS - 1):]
        tokens.append(Token(sign, key, float(r.when)))
        miner.proto["wm_tokens"] = tokens
        return self.native(r, 134, {"time": t, "salt": salt, "newsalt": newsalt})

    def _tokens(self, miner: SimMiner) -> list[Token]:
        tokens = miner.proto.get("wm_tokens")
        return [t for t in tokens if isinstance(t, Token)] if isinstance(tokens, list) else []

    def encrypted(self, miner: SimMiner, r: Reading, data: str) -> Reply:
        for token in reversed(self._tokens(miner)):
            if r.when - token.created >= TOKEN_TTL_S:
                continue
            cmd = decrypt(token.key, data)
            if cmd is None or cmd.get("token") != token.sign:
                continue
            return {"enc": encrypt(token.key, self.write(miner, r, cmd))}
        return self.native(r, 135, "check token err", ok=False)

    def write(self, miner: SimMiner, r: Reading, cmd: dict[str, Any]) -> Reply:
        name = str(cmd.get("cmd", ""))
        handler = self.writes.get(name)
        if handler is None:
            return self.native(r, 14, "invalid cmd", ok=False)
        if Fault.IGNORE_COMMANDS in miner.phys.faults:
            log.info("%s: %s acknowledged and ignored (fault ignore_commands)", miner.ip, name)
            return self.native(r, 131, "API command OK")
        return handler(miner, r, cmd)

    # ------------------------------------------------------------ writes
    def power_off(self, miner: SimMiner, r: Reading, cmd: dict[str, Any]) -> Reply:
        miner.phys.sleep()
        miner.proto["wm_power_off"] = True
        log.info("%s: power_off", miner.ip)
        return self.native(r, 131, "API command OK")

    def power_on(self, miner: SimMiner, r: Reading, cmd: dict[str, Any]) -> Reply:
        miner.phys.wake()
        miner.proto["wm_power_off"] = False
        log.info("%s: power_on", miner.ip)
        return self.native(r, 131, "API command OK")

    def adjust_power_limit(self, miner: SimMiner, r: Reading, cmd: dict[str, Any]) -> Reply:
        watts = int_param(cmd, "power_limit", 1, 99999)
        if watts is None:
            return self.native(r, 14, "invalid power_limit", ok=False)
        limit = min(watts, default_power_limit(miner))
        miner.phys.set_power_limit(float(limit), reboot=True)
        miner.proto["wm_power_limit"] = limit
        miner.proto["wm_power_off"] = False
        log.info("%s: adjust_power_limit %d W (rebooting to apply)", miner.ip, limit)
        return self.native(r, 131, "API command OK")

    def reboot(self, miner: SimMiner, r: Reading, cmd: dict[str, Any]) -> Reply:
        miner.phys.reboot()
        miner.proto["wm_power_off"] = False
        return self.native(r, 131, "API command OK")

    def set_led(self, miner: SimMiner, r: Reading, cmd: dict[str, Any]) -> Reply:
        miner.proto["wm_led"] = "auto" if cmd.get("param") == "auto" else "manual"
        return self.native(r, 131, "API command OK")

    def set_mode(self, miner: SimMiner, r: Reading, cmd: dict[str, Any]) -> Reply:
        mode = str(cmd["cmd"]).removeprefix("set_").removesuffix("_power")
        miner.proto["wm_mode"] = mode.capitalize()
        miner.phys.set_ratio({"low": 0.8, "normal": 1.0, "high": 1.0}[mode])
        return self.native(r, 131, "API command OK")

    def set_power_pct(self, miner: SimMiner, r: Reading, cmd: dict[str, Any]) -> Reply:
        pct = int_param(cmd, "percent", 0, 100)
        if pct is None:
            return self.native(r, 14, "invalid percent", ok=False)
        miner.phys.set_power_limit(default_power_limit(miner) * pct / 100.0)
        return self.native(r, 131, "API command OK")

    # ------------------------------------------------------------ native reads
    def status_cmd(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        return self.native(r, 131, {"btmineroff": "true" if btminer_off(miner) else "false",
                                    "Firmware Version": f"'{FW_VERSION}'"})

    def get_version(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        return self.native(r, 131, {"api_ver": API_VERSION, "fw_ver": FW_VERSION, "platform": "H6OS",
                                    "chip": "HP3D04-20010214 C BINV04-192104B"})

    def get_miner_info(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        return self.native(r, 131, {"ip": miner.ip, "proto": "dhcp", "netmask": "255.255.255.0", "dns": "",
                                    "mac": (miner.d.mac or "").upper(), "ledstat": miner.proto.get("wm_led", "auto"),
                                    "gateway": "", "hostname": miner.d.hostname, "minersn": miner.serial})

    def get_psu(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        return self.native(r, 131, {"name": "P221B", "hw_version": "V01.00", "sw_version": "V01.00.V01.03",
                                    "model": "P221B", "iin": str(int(r.power_w / 230.0 * 1000)),
                                    "vin": "23000", "fan_speed": str(7000 if r.hashing else 3000),
                                    "serial_no": f"P{miner.serial[-12:]}"})

    def get_error_code(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        return self.native(r, 131, {"error_code": self._errors(r)})

    def _errors(self, r: Reading) -> list[dict[str, str]]:
        when = str(r.when)
        errs = []
        if r.dead_board >= 0:
            errs.append({str(540 + r.dead_board): when})  # "hash board N error"
        if max(r.chip_temps) >= 90:
            errs.append({"352": when})  # "chip temperature too high"
        return errs

    # ------------------------------------------------------------ cgminer-style reads
    def summary(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        accepted, rejected = shares(miner, r)
        mhs = round(r.mhs, 2)
        limit = miner.proto.get("wm_power_limit", default_power_limit(miner))
        errors = self._errors(r)
        item: dict[str, Any] = {
            "Elapsed": r.uptime_s if r.hashing else 0, "MHS av": mhs, "MHS 5s": mhs, "MHS 1m": mhs,
            "MHS 5m": mhs, "MHS 15m": mhs, "HS RT": mhs, "Found Blocks": 0, "Getworks": accepted // 2,
            "Accepted": accepted, "Rejected": rejected, "Hardware Errors": 0,
            "Utility": round(accepted / max(r.uptime_s / 60.0, 1.0), 2), "Discarded": 0, "Stale": 0,
            "Get Failures": 0, "Local Work": accepted * 31, "Remote Failures": 0, "Network Blocks": 170,
            "Total MH": round(r.mhs * r.uptime_s, 4), "Work Utility": 0.0,
            "Difficulty Accepted": float(accepted * 262144), "Difficulty Rejected": float(rejected * 262144),
            "Difficulty Stale": 0.0, "Best Share": accepted * 9973, "Temperature": max(r.board_temps),
            "freq_avg": r.mhz, "Fan Speed In": r.fans[0], "Fan Speed Out": r.fans[1], "Voltage": 1206,
            "Power": round(r.power_w), "Power_RT": round(r.power_w),
            "Power Rate": round(r.power_w / r.ths, 2) if r.ths > 0 else 0.0,
            "Device Hardware%": 0.0, "Device Rejected%": 0.0, "Pool Rejected%": 0.0, "Pool Stale%": 0.0,
            "Last getwork": 0, "Uptime": r.uptime_s, "Chip Data": "HPJA05-20070601 BINV02-193005F",
            "Power Current": round(r.power_w / 12.8, 6), "Power Fanspeed": 7608 if r.hashing else 3000,
        }
        for i, err in enumerate(errors):
            item[f"Error Code {i}"] = int(next(iter(err)))
            item[f"Error {i} Time"] = ""
        item.update({
            "Error Code Count": len(errors), "Factory Error Code Count": 0, "Security Mode": 0,
            "Liquid Cooling": False, "Hash Stable": r.phase == "mining", "Hash Stable Cost Seconds": r.uptime_s,
            "Hash Deviation%": 0.0, "Target Freq": r.mhz, "Target MHS": int(r.nominal_ths * r.ratio * 1e6),
            "Env Temp": float(miner.phys.ambient_c), "Power Mode": miner.proto.get("wm_mode", "Normal"),
            "Firmware Version": f"'{FW_VERSION}'", "CB Platform": "ALLWINNER_H6OS", "CB Version": "V10",
            "MAC": (miner.d.mac or "").upper(), "Factory GHS": int(r.nominal_ths * 1000 * miner.phys.hash_mult),
            "Power Limit": limit, "Power Voltage Input": 230.0,
            "Power Current Input": round(r.power_w / 230.0, 2), "Chip Temp Min": min(r.board_temps),
            "Chip Temp Max": max(r.chip_temps), "Chip Temp Avg": round(sum(r.chip_temps) / len(r.chip_temps), 2),
            "Debug": f"{r.ths:.1f}/{r.nominal_ths:.1f}T_{r.power_w / max(r.ths, 0.001):.1f}W",
        })
        return self.reply(r, 11, "Summary", "SUMMARY", [item])

    def pools(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        rows = []
        for row in cgminer_rows(miner, r, first_index=1):
            row.pop("Pool Stale%%")
            row.pop("Diff")
            active = row["Stratum Active"]
            row["Last Share Time"] = r.when if active else 0
            row["Stratum URL"] = stratum_host(row["URL"]) if active else ""
            row["Best Share"] = int(row["Best Share"])
            row.update({"Works": row["Accepted"] * 390000, "Work Difficulty": 0.0,
                        "Stratum Difficulty": 262144.0 if active else 0.0, "Pool Stale%": 0.0,
                        "Bad Work": 0, "Current Block Height": 868600 if active else 0,
                        "Current Block Version": 536870912})
            rows.append(row)
        return self.reply(r, 7, f"{len(rows)} Pool(s)", "POOLS", rows)

    def devs(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        accepted, _ = shares(miner, r)
        items = []
        for i, ths in enumerate(r.board_ths):
            alive = r.board_alive(i)
            mhs = round(ths * 1e6, 2)
            items.append({
                "ASC": i, "Name": "SM", "ID": i, "Slot": i, "Enabled": "Y", "Status": "Alive" if alive else "Dead",
                "Temperature": r.board_temps[i], "Chip Frequency": r.mhz if alive else 0,
                "Fan Speed In": r.fans[0], "Fan Speed Out": r.fans[1], "MHS av": mhs, "MHS 5s": mhs,
                "MHS 1m": mhs, "MHS 5m": mhs, "MHS 15m": mhs, "Accepted": accepted // len(r.board_ths),
                "Rejected": 0, "Hardware Errors": 0, "Utility": 0.0, "Last Share Pool": 0,
                "Last Share Time": r.when, "Total MH": round(ths * 1e6 * r.uptime_s, 4), "Diff1 Work": 0,
                "Difficulty Accepted": 0.0, "Difficulty Rejected": 0.0, "Last Share Difficulty": 262144.0,
                "Last Valid Work": r.when, "Device Hardware%": 0.0, "Device Rejected%": 0.0,
                "Device Elapsed": r.uptime_s, "Upfreq Complete": 1, "Effective Chips": r.chips if alive else 0,
                "PCB SN": f"{miner.serial[:12]}{i:02d}{stable_int(miner.serial + str(i), 10**6):06d}",
                "Chip Data": "HPJA05-20070601 BINV02-193005F", "Chip Temp Min": r.board_temps[i],
                "Chip Temp Max": r.chip_temps[i], "Chip Temp Avg": round((r.board_temps[i] + r.chip_temps[i]) / 2, 2),
                "chip_vol_diff": 11,
            })
        return self.reply(r, 9, f"{len(items)} ASC(s)", "DEVS", items)

    def devdetails(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        code = MODEL_CODES.get(miner.phys.spec.key, f"{miner.phys.spec.key}_V10")
        items = [{"DEVDETAILS": i, "Name": "SM", "ID": i, "Driver": "bitmicro", "Kernel": "", "Model": code}
                 for i in range(len(r.board_ths))]
        return self.reply(r, 69, "Device Details", "DEVDETAILS", items)

    def break_json(self, command: str, text: str) -> str:
        """btminer's breakage: `\\'` escapes inside the firmware version string, and a trailing `,}`."""
        text = text.replace(f"'{FW_VERSION}'", f"\\'{FW_VERSION}\\'")
        return text[:-1] + ",}" if text.endswith("}") else text
