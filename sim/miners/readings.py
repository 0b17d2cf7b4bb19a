"""One consistent reading of a simulated miner, taken from its physics at the moment of a request.

Every protocol renders its replies from a `Reading`, so a `summary` and a `stats` asked at the same instant agree,
and the physics (a lazily evaluated phase machine) is queried once per request rather than once per field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sim.physics import Fault
from sim.runtime import SimMiner

# Nominal chip clock (MHz) per model: what stock firmware reports as `frequency` and LuxOS names its profiles after.
NOMINAL_MHZ: dict[str, int] = {
    "S9": 650,
    "S17": 570,
    "S19": 675,
    "S19 Pro": 525,
    "S19j Pro": 545,
    "S19 XP": 600,
    "S21": 490,
    "M30S": 600,
    "M31S": 652,
    "M50": 580,
    "M60": 560,
    "A1246": 500,
}


@dataclass(frozen=True, slots=True)
class Reading:
    when: int  # simulated UNIX time, seconds
    phase: str
    sleeping: bool
    hashing: bool
    ths: float
    board_ths: list[float]
    board_temps: list[float]
    chip_temps: list[float]
    fans: list[int]
    power_w: float
    uptime_s: int
    ratio: float  # effective share of nominal clock
    nominal_ths: float
    chips: int  # per board
    dead_board: int  # index of the failed hash board, -1 if none
    mhz: int  # current chip clock

    @property
    def ghs(self) -> float:
        return self.ths * 1000.0

    @property
    def mhs(self) -> float:
        return self.ths * 1_000_000.0

    def board_alive(self, i: int) -> bool:
        return i != self.dead_board


def read(miner: SimMiner) -> Reading:
    phys = miner.phys
    spec = phys.spec
    ratio = phys.target_ratio if Fault.OVERHEAT not in phys.faults else min(phys.target_ratio, 0.75)
    nominal_mhz = NOMINAL_MHZ.get(spec.key, 550)
    return Reading(
        when=int(phys.clock.now()),
        phase=str(phys.phase()),
        sleeping=phys.is_sleeping,
        hashing=phys.is_hashing,
        ths=phys.hashrate_ths(),
        board_ths=phys.board_hashrates_ths(),
        board_temps=phys.board_temps_c(),
        chip_temps=phys.chip_temps_c(),
        fans=phys.fans_rpm(),
        power_w=phys.power_w(),
        uptime_s=phys.uptime_s(),
        ratio=ratio,
        nominal_ths=spec.nominal_ths,
        chips=spec.chips_per_board,
        dead_board=0 if Fault.HASHBOARD in phys.faults else -1,
        mhz=round(nominal_mhz * ratio),
    )


def stable_int(seed: str, modulo: int) -> int:
    """A deterministic pseudo-random integer from a seed (share counters, ids) so replies are reproducible."""
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:6], "big") % modulo


def shares(miner: SimMiner, r: Reading) -> tuple[int, int]:
    """Accepted and rejected share counts growing with hashing time (one share per TH per 1000 s at difficulty 262K)."""
    accepted = int(r.uptime_s * max(r.ths, 0.0) / 1000.0) + stable_int(miner.serial, 50)
    return accepted, accepted // 1200
