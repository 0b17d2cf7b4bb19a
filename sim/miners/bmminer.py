"""Stock Antminer firmware (bmminer): the cgminer RPC on 4028. The web API on 80 is in `sim.miners.antminer_web`.

Shapes follow the real captures in shared/fixtures/miners (foreman_antminer_s19_*, protofleet_antminer_s21_rpc_*):
hash rates in GH/s (`GHS 5s`), per-chain `chain_rateN` as strings, `temp_chipN` as "a-b-c-d", a fourth empty chain,
and no power figure (stock firmware reports none).
"""

from __future__ import annotations

import re
from typing import Any

from sim.miners.cgminer import CgminerApi, Reply, Request
from sim.miners.pools import cgminer_rows
from sim.miners.readings import Reading, shares
from sim.runtime import SimMiner

MINER_VERSION = "49.0.1.3"
COMPILE_TIME = "Thu Jul 11 16:38:25 CST 2024"
CHAINS = 4  # stock S19/S21 stats always list four chains, the last one empty


def model_name(miner: SimMiner) -> str:
    return f"Antminer {miner.phys.spec.key}"


def miner_id(miner: SimMiner) -> str:
    return miner.serial.lower().encode().hex()[:16]


def dash_temps(t: float, alive: bool, spread: tuple[int, int, int, int]) -> str:
    """Four sensor readings per chain, as stock firmware prints them: "a-b-c-d" (0-0-0-0 for a dead chain)."""
    if not alive:
        return "0-0-0-0"
    return "-".join(str(round(t + d)) for d in spread)


def chain_fields(r: Reading) -> dict[str, Any]:
    """The per-chain keys of STATS[1] (temp_pcbN, temp_chipN, chain_acnN, chain_rateN, ...)."""
    out: dict[str, Any] = {}
    n_boards = len(r.board_ths)
    for key, spread in (("temp_pcb", (-13, -29, 0, -10)), ("temp_chip", (-8, -24, 5, -5)),
                        ("temp_pic", (-23, -39, -10, -20))):
        for i in range(CHAINS):
            live = i < n_boards and r.board_alive(i)
            base = r.board_temps[i] if i < n_boards else 0.0
            out[f"{key}{i + 1}"] = dash_temps(base, live, spread)
    out["total_rateideal"] = round(r.nominal_ths * r.ratio * 1000.0, 2)
    out["rate_unit"] = "GH"
    out["total_freqavg"] = r.mhz
    out["total_acn"] = sum(r.chips for i in range(n_boards) if r.board_alive(i))
    out["total rate"] = round(r.ghs, 2)
    out["temp_max"] = 0
    out["no_matching_work"] = 0
    for i in range(CHAINS):
        live = i < n_boards and r.board_alive(i)
        out[f"chain_acn{i + 1}"] = r.chips if live else 0
    for i in range(CHAINS):
        live = i < n_boards and r.board_alive(i)
        out[f"chain_acs{i + 1}"] = (" " + " ".join(["oo"] * (r.chips // 2))) if live else ""
    for i in range(CHAINS):
        out[f"chain_hw{i + 1}"] = 0
    for i in range(CHAINS):
        live = i < n_boards and r.board_alive(i)
        out[f"chain_rate{i + 1}"] = f"{r.board_ths[i] * 1000.0:.2f}" if live else ""
    for i in range(CHAINS):
        live = i < n_boards and r.board_alive(i)
        out[f"freq{i + 1}"] = r.mhz if live else 0
    return out


def stats_body(miner: SimMiner, r: Reading) -> dict[str, Any]:
    boards = len(r.board_ths)
    body: dict[str, Any] = {
        "STATS": 0, "ID": "BTM_SOC0", "Elapsed": r.uptime_s, "Calls": 0, "Wait": 0, "Max": 0, "Min": 99999999,
        "GHS 5s": round(r.ghs, 2), "GHS av": round(r.ghs, 2), "rate_30m": round(r.ghs, 2), "Mode": 2,
        "miner_count": sum(1 for i in range(boards) if r.board_alive(i)), "frequency": r.mhz,
        "fan_num": len(r.fans),
    }
    for i, rpm in enumerate(r.fans):
        body[f"fan{i + 1}"] = rpm
    body["temp_num"] = body["miner_count"]
    for i in range(boards):
        if r.board_alive(i):
            body[f"temp{i + 1}"] = round(r.board_temps[i])
            body[f"temp2_{i + 1}"] = round(r.chip_temps[i])
    body.update(chain_fields(r))
    body["miner_version"] = MINER_VERSION
    body["miner_id"] = miner_id(miner)
    return body


class BmminerApi(CgminerApi):
    firmware = "bmminer"
    description = "cgminer 1.0.0"
    string_number_keys = frozenset({"GHS 5s"})

    def __init__(self) -> None:
        super().__init__()
        self.commands = {
            "version": self.version,
            "summary": self.summary,
            "stats": self.stats,
            "pools": self.pools,
            "devs": self.devs,
            "config": self.config,
            "devdetails": self.devdetails,
        }

    def header(self, miner: SimMiner) -> dict[str, Any]:
        return {"BMMiner": "1.0.0", "Miner": MINER_VERSION, "CompileTime": COMPILE_TIME, "Type": model_name(miner)}

    def version(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        item = {"BMMiner": "1.0.0", "API": "3.1", "Miner": MINER_VERSION, "CompileTime": COMPILE_TIME,
                "Type": model_name(miner)}
        return self.reply(r, 22, "CGMiner versions", "VERSION", [item])

    def summary(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        accepted, rejected = shares(miner, r)
        ghs = round(r.ghs, 2)
        item = {
            "Elapsed": r.uptime_s, "GHS 5s": ghs, "GHS av": ghs, "GHS 30m": ghs, "Found Blocks": 0,
            "Getwork": accepted // 2, "Accepted": accepted, "Rejected": rejected, "Hardware Errors": 0,
            "Utility": round(accepted / max(r.uptime_s / 60.0, 1.0), 2), "Discarded": accepted * 30, "Stale": 0,
            "Get Failures": 0, "Local Work": accepted * 31, "Remote Failures": 0, "Network Blocks": 102,
            "Total MH": float(int(r.mhs * r.uptime_s)), "Work Utility": round(r.ghs * 13.9, 2),
            "Difficulty Accepted": float(accepted * 262144), "Difficulty Rejected": float(rejected * 262144),
            "Difficulty Stale": 0.0, "Best Share": accepted * 9973, "Device Hardware%": 0.0,
            "Device Rejected%": 0.0, "Pool Rejected%": 0.0, "Pool Stale%": 0.0, "Last getwork": r.when,
        }
        return self.reply(r, 11, "Summary", "SUMMARY", [item])

    def stats(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        return self.reply(r, 70, "CGMiner stats", "STATS", [self.header(miner), stats_body(miner, r)])

    def pools(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        rows = cgminer_rows(miner, r, dead_status="Deed")
        return self.reply(r, 7, f"{len(rows)} Pool(s)", "POOLS", rows)

    def devs(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        """One BTM_SOC ASC; its `MHS` fields carry GH/s figures, as the real S21 capture shows."""
        accepted, rejected = shares(miner, r)
        item = {
            "ASC": 0, "Name": "BTM_SOC", "ID": 0, "Enabled": "Y", "Status": "Alive",
            "Temperature": float(max(r.board_temps)), "MHS av": round(r.ghs, 2), "MHS 5s": round(r.ghs, 2),
            "Accepted": accepted, "Rejected": rejected, "Hardware Errors": 0, "Utility": 0.0,
            "Last Share Pool": 0, "Last Share Time": r.when, "Total MH": 0.0, "Diff1 Work": 0,
            "Difficulty Accepted": accepted * 262144, "Difficulty Rejected": rejected * 262144,
            "Last Share Difficulty": r.when, "Last Valid Work": r.when, "Device Hardware%": 0.0,
            "Device Rejected%": 0.0, "Device Elapsed": r.uptime_s,
        }
        return self.reply(r, 9, "1 ASC(s)", "DEVS", [item])

    def config(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        item = {
            "ASC Count": len(r.board_ths), "PGA Count": 0, "Pool Count": 3, "Strategy": "Failover",
            "Log Interval": 5, "Device Code": "BTM_SOC", "OS": "Linux", "Failover-Only": True, "ScanTime": 60,
            "Queue": 1, "Expiry": 120,
        }
        return self.reply(r, 33, "CGMiner config", "CONFIG", [item])

    def devdetails(self, miner: SimMiner, r: Reading, req: Request) -> Reply:
        """One BTM_SOC device named after the model (why pyasic ignores "ANTMINER" in a DEVDETAILS reply)."""
        item = {"DEVDETAILS": 0, "Name": "BTM_SOC", "ID": 0, "Driver": "bitmain_soc", "Kernel": "",
                "Model": model_name(miner), "Device Path": ""}
        return self.reply(r, 69, "Device Details", "DEVDETAILS", [item])

    def break_json(self, command: str, text: str) -> str:
        """Old bmminer writes the STATS objects with no comma between them: `...}{"STATS":0,...`."""
        return _STATS_JOIN.sub(r"\1{", text)


_STATS_JOIN = re.compile(r'("STATS":\[\{[^{}]*\}),\{')
