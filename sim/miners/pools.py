"""Pool rows in the cgminer `pools` shape, from the site file's pool list (always three slots, like real firmware)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sim.miners.readings import Reading, shares
from sim.runtime import SimMiner

POOL_SLOTS = 3


def worker(miner: SimMiner) -> str:
    return miner.d.worker or f"{miner.d.owner}.{miner.d.hostname}"


def stratum_host(url: str) -> str:
    return urlsplit(url).hostname or ""


def configured(miner: SimMiner) -> list[dict[str, str]]:
    """The pool settings (url/user/pass) the firmware stores, padded to three slots; web edits override the site."""
    stored = miner.proto.get("pools")
    if isinstance(stored, list):
        return stored
    rows = [{"url": url, "user": worker(miner), "pass": "x"} for url in miner.d.pools[:POOL_SLOTS]]
    rows += [{"url": "", "user": "", "pass": ""}] * (POOL_SLOTS - len(rows))
    return rows


def cgminer_rows(miner: SimMiner, r: Reading, first_index: int = 0, dead_status: str = "Dead") -> list[dict[str, Any]]:
    """`POOLS` entries; the first configured pool carries the work. Stock bmminer spells empty slots "Deed"."""
    accepted, rejected = shares(miner, r)
    rows = []
    for i, p in enumerate(configured(miner)):
        active = i == 0 and bool(p["url"]) and r.hashing
        used = bool(p["url"])
        rows.append({
            "POOL": i + first_index,
            "URL": p["url"],
            "Status": "Alive" if used else dead_status,
            "Priority": i,
            "Quota": 1,
            "Long Poll": "N",
            "Getworks": accepted // 2 if i == 0 else 0,
            "Accepted": accepted if i == 0 else 0,
            "Rejected": rejected if i == 0 else 0,
            "Discarded": accepted * 30 if i == 0 else 0,
            "Stale": 0,
            "Get Failures": 0,
            "Remote Failures": 0,
            "User": p["user"],
            "Last Share Time": "0:00:04" if active else "0",
            "Diff": "262K" if used else "",
            "Diff1 Shares": 0,
            "Proxy Type": "",
            "Proxy": "",
            "Difficulty Accepted": float(accepted * 262144) if i == 0 else 0.0,
            "Difficulty Rejected": float(rejected * 262144) if i == 0 else 0.0,
            "Difficulty Stale": 0.0,
            "Last Share Difficulty": 262144.0 if active else 0.0,
            "Has Stratum": used,
            "Stratum Active": active,
            "Stratum URL": stratum_host(p["url"]) if active else "",
            "Has GBT": False,
            "Best Share": float(accepted * 9973) if i == 0 else 0.0,
            "Pool Rejected%": round(100.0 * rejected / accepted, 4) if i == 0 and accepted else 0.0,
            "Pool Stale%%": 0.0,
        })
    return rows
