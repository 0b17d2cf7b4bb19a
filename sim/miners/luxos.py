"""LuxOS (LUXminer) on an Antminer: the cgminer RPC on 4028 with LuxOS's own commands.

Privileged commands need a session: `logon` returns a SessionID (Code 402 "Another session is active" while one is
open), which the client passes as the first parameter (`curtail` -> "SID,sleep"). `session` tells the open session.
Profiles are clock presets in 25 MHz steps below the model's nominal clock; hash rate follows the clock and power
the catalogue curve. `curtail sleep` turns boards and PSU off (~25 W); `curtail wakeup` ramps like a boot.
Shapes follow luxos_version_testdata.json / luxos_atm_testdata.json; status codes not in those captures
(sessions, profiles, power, curtail 335) follow the LuxOS API docs as summarised in shared/domain/DEVICES.md.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from kuat.catalog import ModelSpec, power_at_ratio
from sim.miners.bmminer import chain_fields
from sim.miners.cgminer import CgminerApi, Reply, Request
from sim.miners.pools import cgminer_rows, configured
from sim.miners.readings import NOMINAL_MHZ, Reading, shares
from sim.physics import Fault
from sim.runtime import SimMiner

log = logging.getLogger(__name__)

LUX_VERSION = "2024.11.5.123125-0a1b2c3d"
COMPILE_TIME = "Tue Nov 05 12:31:25 UTC 2024"
PROFILE_STEP_MHZ = 25
SESSION_IDLE_S = 900.0  # a session left idle this long expires
DEFAULT_PROFILE = "default"
PRIVILEGED = {"curtail", "profileset", "atmset", "logoff", "rebootdevice", "ledset", "resetminer"}


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    mhz: int
    ratio: float
    watts: int
    ths: float


def profiles(spec: ModelSpec) -> list[Profile]:
    """The model's presets: `default` at nominal clock, then 25 MHz steps down to the firmware's lowest ratio."""
    nominal = NOMINAL_MHZ.get(spec.key, 550)
    out = [Profile(DEFAULT_PROFILE, nominal, 1.0, round(spec.nominal_w), spec.nominal_ths)]
    mhz = nominal - PROFILE_STEP_MHZ
    while mhz / nominal >= spec.min_ratio - 1e-9:
        ratio = mhz / nominal
        out.append(Profile(f"{mhz}MHz", mhz, ratio, round(power_at_ratio(spec, ratio)),
                           round(spec.nominal_ths * ratio, 2)))
        mhz -= PROFILE_STEP_MHZ
    return out


def active_profile(miner: SimMiner) -> str:
    name = miner.proto.get("lux_profile", DEFAULT_PROFILE)
    return name if isinstance(name, str) else DEFAULT_PROFILE


class LuxosApi(CgminerApi):
    firmware = "luxos"
    description = "LUXminer"
    string_number_keys = frozenset({"GHS 5s", "GHS av"})

    def __init__(self) -> None:
        super().__init__()
        self.commands = {
            "version": self.version, "summary": self.summary, "stats": self.stats, "pools": self.pools,
            "devs": self.devs, "config": self.config, "fans": self.fans, "tempctrl": self.tempctrl,
            "power": self.power, "profiles": self.profiles, "groups": self.groups, "atm": self.atm,
            "session": self.session, "logon": self.logon, "logoff": self.logoff, "curtail": self.curtail,
            "profileset": self.profileset, "atmset": self.atmset, "rebootdevice": self.rebootdevice,
            "ledset": self.ledset, "devdetails": self.devdetails,
        }

    # ------------------------------------------------------------ sessions
    def _session(self, miner: SimMiner, now: float) -> str | None:
        sid = miner.proto.get("lux_session")
        last = miner.proto.get("lux_session_t", 0.0)
        if isinstance(sid, str) and isinstance(last, float) and now - last < SESSION_IDLE_S:
            return sid
        miner.proto.pop("lux_session", None)
        return None

    def run(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        if req.command in PRIVILEGED:
            sid = self._session(miner, float(r.when))
            if sid is None or not req.params or req.params[0] != sid:
                return self.error(r, 401, "Invalid session id")
            miner.proto["lux_session_t"] = float(r.when)
        return super().run(miner, r, req)

    def session(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        sid = self._session(miner, float(r.when)) or ""
        return self.reply(r, 310, "Session info", "SESSION", [{"SessionID": sid}])

    def logon(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        if self._session(miner, float(r.when)) is not None:
            return self.error(r, 402, "Another session is active")
        sid = secrets.token_hex(4)
        miner.proto["lux_session"] = sid
        miner.proto["lux_session_t"] = float(r.when)
        return self.reply(r, 307, "Session created", "SESSION", [{"SessionID": sid}])

    def logoff(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        miner.proto.pop("lux_session", None)
        return self.reply(r, 308, "Session closed")

    # ------------------------------------------------------------ control
    def curtail(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        action = req.params[1] if len(req.params) > 1 else ""
        if action not in ("sleep", "wakeup"):
            return self.error(r, 336, f"Invalid curtail mode {action!r}: use sleep or wakeup")
        if Fault.IGNORE_COMMANDS not in miner.phys.faults:
            (miner.phys.sleep if action == "sleep" else miner.phys.wake)()
            miner.proto["lux_curtail"] = action
            log.info("%s: curtail %s", miner.ip, action)
        return self.reply(r, 335, f"Curtail {action} request sent")

    def profileset(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        name = req.params[1] if len(req.params) > 1 else ""
        by_name = {p.name: p for p in profiles(miner.phys.spec)}
        if name not in by_name:
            return self.error(r, 327, f"Profile {name!r} not found")
        if self._atm(miner)["Enabled"]:
            return self.error(r, 328, "Cannot change profile while ATM is enabled")
        if Fault.IGNORE_COMMANDS not in miner.phys.faults:
            miner.phys.set_ratio(by_name[name].ratio)
            miner.proto["lux_profile"] = name
            log.info("%s: profile %s", miner.ip, name)
        return self.reply(r, 326, "Profile set", "PROFILE", [{"Profile": name}])

    def _atm(self, miner: SimMiner) -> dict[str, Any]:
        atm = miner.proto.get("lux_atm")
        if not isinstance(atm, dict):
            atm = {"Enabled": True, "MaxProfile": DEFAULT_PROFILE, "MinProfile": "", "PostRampMinutes": 15,
                   "StartupMinutes": 15, "TempWindow": 5.0}
            miner.proto["lux_atm"] = atm
        return atm

    def atm(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        return self.reply(r, 339, "ATM configuration values", "ATM", [dict(self._atm(miner))])

    def atmset(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        atm = self._atm(miner)
        for item in req.params[1:]:
            key, _, value = item.partition("=")
            if key == "enabled" and value in ("true", "false"):
                atm["Enabled"] = value == "true"
            elif key == "temp_window":
                atm["TempWindow"] = float(value)
            elif key in ("min_profile", "max_profile"):
                atm["MinProfile" if key == "min_profile" else "MaxProfile"] = value
            else:
                return self.error(r, 341, f"Invalid ATM parameter {item!r}")
        return self.reply(r, 340, "Advanced Thermal Management configuration updated")

    def rebootdevice(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        if Fault.IGNORE_COMMANDS not in miner.phys.faults:
            miner.phys.reboot()
        return self.reply(r, 310, "Device reboot requested")

    def ledset(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        state = req.params[2] if len(req.params) > 2 else "off"
        miner.proto["lux_red_led"] = state
        return self.reply(r, 312, "LED set")

    # ------------------------------------------------------------ reads
    def version(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        item = {"API": "3.7", "CompileTime": COMPILE_TIME, "LUXminer": LUX_VERSION, "Miner": LUX_VERSION,
                "Type": f"Antminer {miner.phys.spec.key}"}
        return self.reply(r, 22, "LUXminer versions", "VERSION", [item])

    def summary(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        accepted, rejected = shares(miner, r)
        ghs = round(r.ghs, 2)
        item = {"Elapsed": r.uptime_s, "GHS 5s": ghs, "GHS av": ghs, "GHS 30m": ghs, "Found Blocks": 0,
                "Getworks": accepted // 2, "Accepted": accepted, "Rejected": rejected, "Hardware Errors": 0,
                "Utility": round(accepted / max(r.uptime_s / 60.0, 1.0), 2), "Discarded": 0, "Stale": 0,
                "Get Failures": 0, "Local Work": accepted * 31, "Remote Failures": 0, "Network Blocks": 102,
                "Total MH": float(int(r.mhs * r.uptime_s)), "Work Utility": round(r.ghs * 13.9, 2),
                "Difficulty Accepted": float(accepted * 262144), "Difficulty Rejected": float(rejected * 262144),
                "Difficulty Stale": 0.0, "Best Share": accepted * 9973, "Device Hardware%": 0.0,
                "Device Rejected%": 0.0, "Pool Rejected%": 0.0, "Pool Stale%": 0.0, "Last getwork": r.when}
        return self.reply(r, 11, "Summary", "SUMMARY", [item])

    def stats(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        head = {"LUXminer": LUX_VERSION, "Miner": LUX_VERSION, "CompileTime": COMPILE_TIME,
                "Type": f"Antminer {miner.phys.spec.key}"}
        body: dict[str, Any] = {"STATS": 0, "ID": "BTM_SOC0", "Elapsed": r.uptime_s, "GHS 5s": round(r.ghs, 2),
                                "GHS av": round(r.ghs, 2), "frequency": r.mhz, "fan_num": len(r.fans)}
        for i, rpm in enumerate(r.fans):
            body[f"fan{i + 1}"] = rpm
        body.update(chain_fields(r))
        return self.reply(r, 70, "LUXminer stats", "STATS", [head, body])

    def pools(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        rows = cgminer_rows(miner, r)
        for row in rows:
            row["GROUP"] = 0
        return self.reply(r, 7, f"{len(rows)} Pool(s)", "POOLS", rows)

    def groups(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        return self.reply(r, 324, "List groups", "GROUPS", [{"GROUP": 0, "Name": "default", "Quota": 1.0}])

    def devs(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        items = [{"ASC": i, "Name": "BTM_SOC", "ID": i, "Enabled": "Y",
                  "Status": "Alive" if r.board_alive(i) else "Dead", "Temperature": r.board_temps[i],
                  "MHS av": round(ths * 1e6, 2), "MHS 5s": round(ths * 1e6, 2), "Device Elapsed": r.uptime_s}
                 for i, ths in enumerate(r.board_ths)]
        return self.reply(r, 9, f"{len(items)} ASC(s)", "DEVS", items)

    def devdetails(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        items = [{"DEVDETAILS": i, "Name": "BTM_SOC", "ID": i, "Driver": "bitmain_soc", "Kernel": "",
                  "Model": f"Antminer {miner.phys.spec.key}"} for i in range(len(r.board_ths))]
        return self.reply(r, 69, "Device Details", "DEVDETAILS", items)

    def config(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        item = {"ASC Count": len(r.board_ths), "PGA Count": 0, "Pool Count": len(configured(miner)),
                "Strategy": "Failover", "Log Interval": 5, "Device Code": "", "OS": "Linux",
                "Failover-Only": False, "ScanTime": 60, "Queue": 0, "Expiry": 120,
                "Profile": active_profile(miner), "RedLed": miner.proto.get("lux_red_led", "off"),
                "MACAddr": (miner.d.mac or "").lower(), "Hostname": miner.d.hostname, "SerialNumber": miner.serial,
                "CurtailMode": "Sleep" if r.sleeping else "None", "IsAtmEnabled": self._atm(miner)["Enabled"]}
        return self.reply(r, 33, "CGMiner config", "CONFIG", [item])

    def fans(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        items = [{"ID": i, "RPM": rpm, "Speed": min(100, rpm * 100 // 6600)} for i, rpm in enumerate(r.fans)]
        out = self.reply(r, 202, f"{len(items)} Fan(s)", "FANS", items)
        out["FANCTRL"] = [{"MinFans": 4, "Mode": "Auto"}]
        return out

    def tempctrl(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        return self.reply(r, 201, "Temperature control", "TEMPCTRL",
                          [{"Mode": "Auto", "Target": 75.0, "Hot": 85.0, "Dangerous": 95.0}])

    def power(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        return self.reply(r, 30, "Power", "POWER", [{"PSU": not r.sleeping, "Watts": round(r.power_w)}])

    def profiles(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        items = [{"Profile Name": p.name, "Frequency": p.mhz, "Hashrate": p.ths, "IsDynamic": False,
                  "IsTuned": False, "Step": str(i), "Voltage": round(12.8 + 1.6 * p.ratio, 2), "Watts": p.watts}
                 for i, p in enumerate(profiles(miner.phys.spec))]
        return self.reply(r, 325, "Profiles", "PROFILES", items)

    def break_json(self, command: str, text: str) -> str:
        """A trailing comma before the closing brace (`,}`), as several cgminer forks emit."""
        return text[:-1] + ",}" if text.endswith("}") else text
