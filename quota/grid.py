"""The live grid signal's intake rules, pure: which message counts, and which broker's reading the site follows.

Freshness comes from the message's own timestamp, never from when it arrived: a retained message, or one delivered
late after a reconnect, is old news (../shared/domain/QUOTA.md: a retained "100 %" re-delivered on every reconnect
would otherwise defeat the stale-signal failsafe). So:

- a message without a time of its own, or without a time zone, is refused (`Outcome.NO_TS`);
- one dated more than `future_skew_s` ahead of our clock is refused (`FUTURE`: a wrong clock on the grid side
  would keep it "fresh" for as long as it is ahead); one dated within it counts from our clock's now, so a signal
  never stays fresh longer than `stale_after_s` after it arrived;
- one dated more than `past_skew_s` back is refused (`TOO_OLD`);
- one not newer than the last accepted from the same broker is refused (`NOT_NEWER`: a duplicate QoS 1 delivery,
  a retained copy of what we already have, a late one overtaken by a newer one);
- the rest is accepted, and the engine decides, from that timestamp, whether it is fresh (quota.limits).

Two brokers, as in the contract: the site follows the first broker in preference order whose last reading is
fresh (the primary unless it is stale); when none is fresh, the newest reading, which the engine finds stale, so
the contract's safe level applies: on silence and on stale content alike (`choose`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from quota.limits import GridReading


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    INVALID = "invalid"  # the message itself (schema, target) is wrong
    NO_TS = "no_ts"
    FUTURE = "future"
    TOO_OLD = "too_old"
    NOT_NEWER = "not_newer"
    NO_CONTRACT = "no_contract"  # the site has no grid contract, or is not under quota control


@dataclass(frozen=True, slots=True)
class Skew:
    future_s: float = 30.0
    past_s: float = 600.0


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reason: str | None = None  # why it was refused
    ts: datetime | None = None  # the time the reading counts from (accepted only)

    @property
    def accepted(self) -> bool:
        return self.outcome == Outcome.ACCEPTED


def judge(ts: datetime | None, now: datetime, last: datetime | None, skew: Skew) -> Verdict:
    """The verdict on a message stamped `ts`, received at `now`, from a broker whose last accepted reading counts
    from `last` (None: none yet)."""
    if ts is None:
        return Verdict(Outcome.NO_TS, "the message has no ts of its own: its freshness cannot be told")
    if ts.tzinfo is None or ts.utcoffset() is None:
        return Verdict(Outcome.NO_TS, f"ts {ts.isoformat()} has no time zone")
    ahead = (ts - now).total_seconds()
    if ahead > skew.future_s:
        return Verdict(Outcome.FUTURE, f"ts {ts.isoformat()} is {ahead:.0f} s ahead of our clock (more than "
                                       f"{skew.future_s:g} s)")  # fmt: skip
    if -ahead > skew.past_s:
        return Verdict(Outcome.TOO_OLD, f"ts {ts.isoformat()} is {-ahead:.0f} s old (more than {skew.past_s:g} s)")
    counts_from = min(ts, now)
    if last is not None and counts_from <= last:
        return Verdict(Outcome.NOT_NEWER, f"ts {ts.isoformat()} is not newer than the last accepted message "
                                          f"({last.isoformat()})")  # fmt: skip
    return Verdict(Outcome.ACCEPTED, None, counts_from)


def choose(readings: Sequence[GridReading | None], at: datetime,
           stale_after_s: float) -> tuple[int, GridReading] | None:
    """The reading the site follows at `at`, with its broker's index: the first fresh one in preference order;
    if none is fresh, the newest (stale, so the safe level applies); None if no broker ever gave one."""
    known = [(i, r) for i, r in enumerate(readings) if r is not None]
    if not known:
        return None
    for i, r in known:
        if (at - r.ts).total_seconds() <= stale_after_s:
            return i, r
    return max(known, key=lambda item: item[1].ts)
