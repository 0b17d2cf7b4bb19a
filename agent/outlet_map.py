"""Which miner sits on which PDU outlet - taken from config, then checked against what the devices say.

The map is trusted only as far as reality agrees with it: an outlet whose power drops when its miner sleeps (or
that is off while its miner is unreachable) confirms the entry; an outlet that keeps drawing full power while its
miner sleeps, or reads nothing while its miner mines, contradicts it. A contradicted entry is logged once, noted in
the miner's `errors`, and its PDU reading is no longer used as the miner's power.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum

from agent.drivers import apply_outlet_power
from kuat.wire import v1

log = logging.getLogger(__name__)

IDLE_W = 150.0  # a sleeping miner still draws tens of watts (fans, control board); below this counts as "dropped"
ACTIVE_W = 500.0  # above this an outlet is feeding hashing boards
CONFIRMATIONS = 2  # consecutive contradicting cycles before an entry is called wrong ...
CONTRADICTION_SPAN_S = 30.0  # ... spanning at least this long: a miner told to sleep can report "sleeping" while its
# boards still ramp down, and a slow poll cycle can read the PDU before the command and the miner after it


class Verdict(StrEnum):
    UNVERIFIED = "unverified"
    CONFIRMED = "confirmed"
    MISMATCH = "mismatch"


@dataclass
class _EntryState:
    verdict: Verdict = Verdict.UNVERIFIED
    saw_active_while_mining: bool = False
    contradictions: int = 0
    contradicted_since: float | None = None  # time.monotonic() of the first of the current contradictions
    reason: str | None = None


@dataclass
class OutletMap:
    """miner device id -> OutletRef, plus the running verdict on each entry."""

    entries: dict[str, v1.OutletRef] = field(default_factory=dict)
    contradiction_span_s: float = CONTRADICTION_SPAN_S
    _state: dict[str, _EntryState] = field(default_factory=dict)

    def add(self, miner_id: str, ref: v1.OutletRef) -> None:
        self.entries[miner_id] = ref

    def rename(self, old_id: str, new_id: str) -> None:
        """A miner's id changed (its MAC became known): carry its entry over."""
        if old_id in self.entries:
            self.entries[new_id] = self.entries.pop(old_id)
        if old_id in self._state:
            self._state[new_id] = self._state.pop(old_id)

    def outlet_of(self, miner_id: str) -> v1.OutletRef | None:
        return self.entries.get(miner_id)

    def miner_at(self, pdu_id: str, outlet: int) -> str | None:
        for miner_id, ref in self.entries.items():
            if ref.pdu == pdu_id and ref.outlet == outlet:
                return miner_id
        return None

    def verdict(self, miner_id: str) -> Verdict:
        return self._state.get(miner_id, _EntryState()).verdict

    def observe(self, miner: v1.MinerSample, outlet: v1.OutletSample | None, now: float | None = None) -> Verdict:
        """Update the verdict on `miner`'s entry from one cycle's readings of the miner and its outlet (`now`:
        time.monotonic(), given by tests)."""
        ref = self.entries.get(miner.device_id)
        if ref is None or outlet is None:
            return Verdict.UNVERIFIED
        st = self._state.setdefault(miner.device_id, _EntryState())
        contradiction, confirmation = _judge(miner, outlet, st)
        if confirmation:
            st.contradictions, st.contradicted_since = 0, None
            self._set(miner, ref, st, Verdict.CONFIRMED, confirmation)
        elif contradiction:
            now = time.monotonic() if now is None else now
            st.contradictions += 1
            st.contradicted_since = now if st.contradicted_since is None else st.contradicted_since
            if st.contradictions >= CONFIRMATIONS and now - st.contradicted_since >= self.contradiction_span_s:
                self._set(miner, ref, st, Verdict.MISMATCH, contradiction)
        else:
            st.contradictions, st.contradicted_since = 0, None
        return st.verdict

    def _set(self, miner: v1.MinerSample, ref: v1.OutletRef, st: _EntryState, verdict: Verdict, why: str) -> None:
        if st.verdict == verdict:
            return
        where = f"{ref.pdu} outlet {ref.outlet}"
        if verdict == Verdict.MISMATCH:
            log.error("outlet map: %s is probably not miner %s (%s): %s", where, miner.device_id, miner.ip, why)
        else:
            log.info("outlet map: %s confirmed for miner %s (%s): %s", where, miner.device_id, miner.ip, why)
        st.verdict, st.reason = verdict, why

    def merge(self, miner: v1.MinerSample, outlet: v1.OutletSample | None, now: float | None = None) -> v1.MinerSample:
        """Judge the entry, then use the outlet's measured power as the miner's unless the entry is contradicted."""
        if miner.device_id not in self.entries:
            return miner
        miner.outlet = self.entries[miner.device_id]
        verdict = self.observe(miner, outlet, now)
        if verdict == Verdict.MISMATCH:
            miner.errors.append(f"outlet map mismatch: {self._state[miner.device_id].reason}")
            return miner
        if miner.power_source == v1.PowerSource.REPORTED and miner.reported_power_w is None:
            miner.reported_power_w = miner.power_w  # keep the firmware's figure beside the measured one
        return apply_outlet_power(miner, outlet)


def _judge(miner: v1.MinerSample, outlet: v1.OutletSample, st: _EntryState) -> tuple[str | None, str | None]:
    """(contradiction, confirmation) for one cycle; at most one is set."""
    mining = miner.available and miner.state in (v1.MinerState.MINING, v1.MinerState.DEGRADED)
    mining = mining and (miner.hashrate_ths or 0) > 0
    watts = outlet.power_w
    if outlet.state == v1.OutletState.OFF:
        if mining:
            return "the outlet is off but the miner answers and hashes", None
        if not miner.available:
            return None, "the outlet is off and the miner is unreachable"
        return None, None
    if watts is None:
        return None, None
    if mining:
        if watts >= ACTIVE_W:
            st.saw_active_while_mining = True
        if watts < IDLE_W:
            return f"the outlet reads {watts:.0f} W while the miner hashes", None
        return None, None
    if miner.available and miner.state == v1.MinerState.SLEEPING:
        if watts >= ACTIVE_W:
            return f"the outlet still draws {watts:.0f} W while the miner sleeps", None
        if watts < IDLE_W and st.saw_active_while_mining:
            return None, f"its power dropped to {watts:.0f} W when the miner slept"
    return None, None
