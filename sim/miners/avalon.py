"""Avalon (Canaan's cgminer 4.11) on 4028: cgminer reads whose figures live in the `MM ID0` string of `stats`.

Shapes follow foreman_avalon_10xx_multicommand_pools+summary+stats.json (summary in MH/s; `MM ID0` with `Ver`,
`GHSmm`, `MGHS[...]` per board, `MTmax`, `TMax`, `Fan1..`, here with `WALLPOWER` and `WORKLEVEL` as the A12xx
firmware adds them); `version` follows what pyasic 0.79 reads (`PROD`, `MODEL`). Control (pyasic's commands):
`ascset|0,worklevel,set,N` (N 0..2, coarse levels: 0 the lowest), `ascset|0,softoff,1:<ts>` /
`ascset|0,softon,1:<ts>` (replies say "success"), `restart`. The serial is the `DNA` of the control board.
Assumptions without a capture: the power of each work level (a clock ratio on the model's curve, below), the
`version` key set and the ascset reply texts other than "ASC 0 set OK" / "success".
"""

from __future__ import annotations

import logging
from typing import Any

from sim.miners.cgminer import CgminerApi, Reply, Request
from sim.miners.pools import cgminer_rows
from sim.miners.readings import Reading, shares
from sim.physics import Fault
from sim.runtime import SimMiner

log = logging.getLogger(__name__)

CGMINER = "4.11.1"
WORK_LEVELS = {0: 0.8, 1: 0.9, 2: 1.0}  # clock ratio per work level (an assumption: coarse steps, as pyasic maps)
VERSION = "1246-N-21061501_4ec6bb0_61407fa"


def work_level(miner: SimMiner) -> int:
    level = miner.proto.get("ava_level", 2)
    return level if isinstance(level, int) else 2


class AvalonApi(CgminerApi):
    firmware = "avalon"
    description = f"cgminer {CGMINER}"

    def __init__(self) -> None:
        super().__init__()
        self.commands = {"version": self.version, "summary": self.summary, "stats": self.stats,
                         "pools": self.pools, "devs": self.devs, "ascset": self.ascset, "restart": self.restart}

    def model(self, miner: SimMiner) -> str:
        return miner.phys.spec.key.removeprefix("A")

    def version(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        item = {"CGMiner": CGMINER, "API": "3.7", "STM8": "20.08.01", "PROD": f"AvalonMiner {self.model(miner)}-N",
                "MODEL": self.model(miner), "HWTYPE": "MM4v2_X3", "SWTYPE": "MM314", "VERSION": VERSION,
                "LOADER": "d0d779de.00", "DNA": miner.serial, "MAC": (miner.d.mac or "").replace(":", "").lower(),
                "UPAPI": "2"}
        return self.reply(r, 22, "CGMiner versions", "VERSION", [item])

    def summary(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        accepted, rejected = shares(miner, r)
        mhs = round(r.mhs, 2)
        item = {"Elapsed": r.uptime_s, "MHS av": mhs, "MHS 30s": mhs, "MHS 1m": mhs, "MHS 5m": mhs, "MHS 15m": mhs,
                "Found Blocks": 0, "Getworks": accepted // 2, "Accepted": accepted, "Rejected": rejected,
                "Hardware Errors": 0, "Utility": round(accepted / max(r.uptime_s / 60.0, 1.0), 2),
                "Discarded": accepted * 600, "Stale": 0, "Get Failures": 0, "Local Work": accepted * 300,
                "Remote Failures": 0, "Network Blocks": 4, "Total MH": float(int(r.mhs * r.uptime_s)),
                "Work Utility": round(r.ghs * 9.4, 2), "Difficulty Accepted": float(accepted * 131072),
                "Difficulty Rejected": float(rejected * 131072), "Difficulty Stale": 0.0, "Best Share": accepted * 37,
                "Device Hardware%": 0.0, "Device Rejected%": 0.0, "Pool Rejected%": 0.0, "Pool Stale%": 0.0,
                "Last getwork": 0}
        return self.reply(r, 11, "Summary", "SUMMARY", [item])

    def mm_string(self, miner: SimMiner, r: Reading) -> str:
        fans = " ".join(f"Fan{i + 1}[{rpm}]" for i, rpm in enumerate(r.fans))
        state = "In Work" if r.hashing else "In Idle"
        return (f"Ver[{VERSION}] DNA[{miner.serial}] SYSTEMSTATU[Work: {state}, Hash Board: {len(r.board_ths)} ] "
                f"Elapsed[{r.uptime_s}] Temp[{int(miner.phys.ambient_c)}] TMax[{int(max(r.chip_temps))}] "
                f"TAvg[{int(sum(r.chip_temps) / len(r.chip_temps))}] {fans} FanR[{60 if r.hashing else 10}%] "
                f"GHSmm[{r.ghs:.2f}] GHSavg[{r.ghs:.2f}] Freq[{r.mhz}.00] "
                f"MGHS[{' '.join(f'{ths * 1000:.2f}' for ths in r.board_ths)}] "
                f"MTmax[{' '.join(str(int(t)) for t in r.chip_temps)}] "
                f"MTavg[{' '.join(str(int(t)) for t in r.board_temps)}] "
                f"WORKLEVEL[{work_level(miner)}] WALLPOWER[{round(r.power_w)}] SoftOFF[{int(r.sleeping)}]")

    def stats(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        item: dict[str, Any] = {"STATS": 0, "ID": "AVA100", "Elapsed": r.uptime_s, "Calls": 0, "Wait": 0.0,
                                "Max": 0.0, "Min": 99999999.0, "MM ID0": self.mm_string(miner, r)}
        return self.reply(r, 70, "CGMiner stats", "STATS", [item])

    def pools(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        rows = cgminer_rows(miner, r)
        return self.reply(r, 7, f"{len(rows)} Pool(s)", "POOLS", rows)

    def devs(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        item = {"ASC": 0, "Name": "AVA10", "ID": 0, "Enabled": "Y", "Status": "Alive" if r.hashing else "Idle",
                "Temperature": max(r.board_temps), "MHS av": round(r.mhs, 2), "MHS 5s": round(r.mhs, 2),
                "MHS 1m": round(r.mhs, 2),
                "Device Elapsed": r.uptime_s}
        return self.reply(r, 9, "1 ASC(s)", "DEVS", [item])

    def ascset(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        params = req.params
        option = params[1] if len(params) > 1 else ""
        if option == "worklevel" and len(params) > 3 and params[2] == "set" and params[3].isdigit():
            level = int(params[3])
            if level not in WORK_LEVELS:
                return self.error(r, 16, f"ASC 0 set failed: worklevel {level} out of range")
            if Fault.IGNORE_COMMANDS not in miner.phys.faults:
                miner.proto["ava_level"] = level
                miner.phys.set_ratio(WORK_LEVELS[level])
                log.info("%s: worklevel %d", miner.ip, level)
            return self.reply(r, 119, "ASC 0 set OK")
        if option in ("softoff", "softon") and len(params) > 2 and params[2].startswith("1:"):
            if Fault.IGNORE_COMMANDS not in miner.phys.faults:
                (miner.phys.sleep if option == "softoff" else miner.phys.wake)()
                log.info("%s: %s", miner.ip, option)
            return self.reply(r, 119, f"ASC 0 set info: {option} success")
        return self.error(r, 16, f"ASC 0 set failed: unknown option {','.join(params[1:])!r}")

    def restart(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        if Fault.IGNORE_COMMANDS not in miner.phys.faults:
            miner.phys.reboot()
        return {"STATUS": "RESTART"}
