"""quota.rights: the fail-closed rule, one test per reason a machine is dark, and the Astana day boundary."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from quota.rights import Allowance, Decision, Licence, Mirror, Pool, Reason, Rights, endpoint_key

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
TRUST = timedelta(hours=24)
OWNER = "123456789012"
POOL = Pool("KZ Pool", ("stratum+tcp://pool.kz:3333",), date(2026, 1, 1), date(2026, 12, 31))
GOOD = ["stratum+tcp://POOL.kz:3333/worker"]


def mirror(**changes: object) -> Mirror:
    base: dict[str, object] = {
        "dpc": "DPC-1",
        "decisions": {"SN1": Decision("SN1", "included", "DPC-1", OWNER, "KZ-HSC-1")},
        "licences": {OWNER: Licence(OWNER, "L-1", date(2025, 1, 1), date(2027, 1, 1), True)},
        "pools": (POOL,),
        "allowances": {},
        "synced_at": NOW - timedelta(minutes=1),
    }
    base.update(changes)
    return Mirror(**base)  # type: ignore[arg-type]


def right(m: Mirror, serial: str | None = "SN1", pools: list[str] | None = None, now: datetime = NOW) -> Reason:
    return Rights(m, now, TRUST).of(serial, GOOD if pools is None else pools).reason


def test_an_included_machine_of_a_licensed_owner_on_an_accredited_pool_has_power() -> None:
    r = Rights(mirror(), NOW, TRUST).of("SN1", GOOD)
    assert r.powered and r.reason == Reason.INCLUDED and "KZ-HSC-1" in r.detail


@pytest.mark.parametrize(("status", "reason"), [("submitted", Reason.PENDING), ("rejected", Reason.REJECTED),
                                                ("suspended", Reason.SUSPENDED), ("excluded", Reason.EXCLUDED),
                                                ("moved", Reason.MOVED)])
def test_every_status_but_included_is_dark(status: str, reason: Reason) -> None:
    m = mirror(decisions={"SN1": Decision("SN1", status, "DPC-1", OWNER, reason="r")})
    assert right(m) == reason
    assert not Rights(m, NOW, TRUST).of("SN1", GOOD).powered


def test_included_at_another_dpc_is_moved() -> None:
    m = mirror(decisions={"SN1": Decision("SN1", "included", "DPC-2", OWNER, "KZ-HSC-1")})
    r = Rights(m, NOW, TRUST).of("SN1", GOOD)
    assert r.reason == Reason.MOVED and "DPC-2" in r.detail


def test_no_serial_unknown_and_no_pools_are_dark() -> None:
    assert right(mirror(), serial=None) == Reason.NO_SERIAL
    assert right(mirror(), serial="") == Reason.NO_SERIAL
    assert right(mirror(), serial="SN-NEVER-APPLIED") == Reason.UNKNOWN
    assert right(mirror(), pools=[]) == Reason.NO_POOLS


def test_one_unaccredited_pool_among_accredited_ones_is_dark() -> None:
    r = Rights(mirror(), NOW, TRUST).of("SN1", [*GOOD, "stratum+tcp://elsewhere.com:3333"])
    assert r.reason == Reason.POOL_UNACCREDITED and "elsewhere.com" in r.detail


def test_a_withdrawn_or_expired_accreditation_is_dark() -> None:
    withdrawn = Pool("KZ Pool", POOL.endpoints, POOL.valid_from, POOL.valid_to, withdrawn=True)
    assert right(mirror(pools=(withdrawn,))) == Reason.POOL_UNACCREDITED
    ended = Pool("KZ Pool", POOL.endpoints, POOL.valid_from, date(2026, 6, 9))
    assert right(mirror(pools=(ended,))) == Reason.POOL_UNACCREDITED


def test_a_pool_listed_by_host_alone_covers_every_port() -> None:
    m = mirror(pools=(Pool("p", ("pool.kz",), date(2026, 1, 1), date(2026, 12, 31)),))
    assert right(m, pools=["stratum+tcp://pool.kz:25"]) == Reason.INCLUDED
    assert endpoint_key("stratum2+tcp://Pool.KZ:3333/abc") == "pool.kz:3333"


def test_licence_missing_inactive_not_yet_valid() -> None:
    assert right(mirror(licences={})) == Reason.NO_LICENCE
    assert right(mirror(decisions={"SN1": Decision("SN1", "included", "DPC-1", None)})) == Reason.NO_LICENCE
    inactive = Licence(OWNER, "L-1", date(2025, 1, 1), date(2027, 1, 1), False)
    assert right(mirror(licences={OWNER: inactive})) == Reason.LICENCE_EXPIRED
    later = Licence(OWNER, "L-1", date(2026, 7, 1), date(2029, 1, 1), True)
    assert right(mirror(licences={OWNER: later})) == Reason.LICENCE_EXPIRED


def test_a_licence_ends_at_astana_midnight_not_utc_midnight() -> None:
    lic = Licence(OWNER, "L-1", date(2025, 1, 1), date(2026, 6, 10), True)
    m = mirror(licences={OWNER: lic})
    last_minute = datetime(2026, 6, 10, 18, 59, tzinfo=UTC)  # 23:59 in Astana
    first_minute = datetime(2026, 6, 10, 19, 0, tzinfo=UTC)  # 00:00 on 11 June in Astana, still 10 June in UTC
    assert right(m, now=last_minute) == Reason.INCLUDED
    r = Rights(m, first_minute, TRUST).of("SN1", GOOD)
    assert r.reason == Reason.LICENCE_EXPIRED and "2026-06-10" in r.detail


def test_decisions_older_than_the_trust_window_darken_everything() -> None:
    assert right(mirror(synced_at=NOW - TRUST + timedelta(seconds=1))) == Reason.INCLUDED
    r = Rights(mirror(synced_at=NOW - TRUST - timedelta(seconds=1)), NOW, TRUST).of("SN1", GOOD)
    assert r.reason == Reason.STALE and "trust window" in r.detail
    assert right(mirror(synced_at=None)) == Reason.STALE


def test_a_commissioning_allowance_powers_a_pending_machine_while_it_lasts() -> None:
    allowance = Allowance("SN2", NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    pending = {"SN2": Decision("SN2", "submitted", "DPC-1", OWNER)}
    r = Rights(mirror(decisions=pending, allowances={"SN2": [allowance]}), NOW, TRUST).of("SN2", GOOD)
    assert r.powered and r.reason == Reason.ALLOWANCE
    later = NOW + timedelta(hours=1)
    assert right(mirror(decisions=pending, allowances={"SN2": [allowance]}), serial="SN2", now=later) == \
        Reason.PENDING
    revoked = Allowance("SN2", allowance.starts_at, allowance.ends_at, revoked_at=NOW - timedelta(minutes=5))
    assert right(mirror(decisions=pending, allowances={"SN2": [revoked]}), serial="SN2") == Reason.PENDING
    # never applied for: the registry would refuse the allowance, and so does the rule
    assert right(mirror(allowances={"SN2": [allowance]}), serial="SN2") == Reason.UNKNOWN


def test_an_allowance_does_not_override_the_authority_or_the_pool_or_the_licence() -> None:
    allowance = {"SN2": [Allowance("SN2", NOW - timedelta(hours=1), NOW + timedelta(hours=1))]}
    rejected = {"SN2": Decision("SN2", "rejected", "DPC-1", OWNER)}
    pending = {"SN2": Decision("SN2", "submitted", "DPC-1", OWNER)}
    assert right(mirror(decisions=rejected, allowances=allowance), serial="SN2") == Reason.REJECTED
    assert right(mirror(decisions=pending, allowances=allowance), serial="SN2", pools=["stratum+tcp://x.com:1"]) == \
        Reason.POOL_UNACCREDITED
    unlicensed = {"SN2": Decision("SN2", "submitted", "DPC-1", "999999999999")}
    assert right(mirror(decisions=unlicensed, allowances=allowance), serial="SN2") == Reason.NO_LICENCE


def test_a_sleeping_machine_that_tells_no_pools_is_checked_when_it_runs() -> None:
    rights = Rights(mirror(), NOW, TRUST)
    assert rights.of("SN1", [], asleep=True).reason == Reason.INCLUDED  # stock firmware asleep answers nothing
    assert rights.of("SN1", [], asleep=False).reason == Reason.NO_POOLS  # hashing and telling no pool: dark
    assert rights.of("SN1", ["stratum+tcp://x.com:1"], asleep=True).reason == Reason.POOL_UNACCREDITED
