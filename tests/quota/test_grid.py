"""The grid signal's intake rules (quota.grid): freshness from the message's own time, skew, order, two brokers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from quota.grid import Outcome, Skew, choose, judge
from quota.limits import GridReading

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SKEW = Skew(future_s=30, past_s=600)


def test_a_message_counts_from_its_own_time() -> None:
    v = judge(NOW - timedelta(seconds=200), NOW, None, SKEW)
    assert v.accepted and v.ts == NOW - timedelta(seconds=200)  # not the time it arrived


def test_slightly_ahead_counts_from_now_far_ahead_or_far_back_is_refused() -> None:
    ahead = judge(NOW + timedelta(seconds=20), NOW, None, SKEW)
    assert ahead.accepted and ahead.ts == NOW  # never fresh for longer than stale_after_s after it arrived
    future = judge(NOW + timedelta(seconds=31), NOW, None, SKEW)
    assert future.outcome == Outcome.FUTURE and "31 s ahead" in str(future.reason)
    old = judge(NOW - timedelta(seconds=601), NOW, None, SKEW)
    assert old.outcome == Outcome.TOO_OLD and "601 s old" in str(old.reason)


def test_without_a_time_of_its_own_or_a_time_zone_it_is_refused() -> None:
    assert judge(None, NOW, None, SKEW).outcome == Outcome.NO_TS
    assert judge(datetime(2026, 11, 22, 10, 0), NOW, None, SKEW).outcome == Outcome.NO_TS


def test_a_duplicate_or_an_older_message_from_the_same_broker_is_refused() -> None:
    last = NOW - timedelta(seconds=10)
    assert judge(last, NOW, last, SKEW).outcome == Outcome.NOT_NEWER  # a QoS 1 re-delivery, a retained copy
    assert judge(last - timedelta(seconds=1), NOW, last, SKEW).outcome == Outcome.NOT_NEWER  # overtaken
    assert judge(last + timedelta(seconds=1), NOW, last, SKEW).accepted


def test_the_primary_is_followed_unless_it_is_stale() -> None:
    primary = GridReading(NOW - timedelta(seconds=100), target_pct=60)
    secondary = GridReading(NOW - timedelta(seconds=5), target_pct=40)
    assert choose([primary, secondary], NOW, 240) == (0, primary)  # fresh: preferred, even if the other is newer
    assert choose([primary, secondary], NOW, 60) == (1, secondary)  # stale: the next fresh one
    assert choose([None, secondary], NOW, 60) == (1, secondary)
    # none fresh: the newest, which the engine finds stale (the safe level applies); none ever: None
    assert choose([primary, GridReading(NOW - timedelta(seconds=90), target_pct=40)], NOW, 60) == \
        (1, GridReading(NOW - timedelta(seconds=90), target_pct=40))
    assert choose([None, None], NOW, 60) is None
