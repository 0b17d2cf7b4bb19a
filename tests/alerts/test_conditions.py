"""alerts.conditions.observe over hand-made facts: each condition's arithmetic and its scope, worked by hand."""

from __future__ import annotations

from alerts.conditions import observe, projected_hour_kwh
from alerts.facts import Facts, GatewayFact, MachineFact, SiteFact, ViolationFact
from alerts.rules import Condition, Rule, Scope


def rule(condition: Condition, threshold: float | None = None, **scope: set[str]) -> Rule:
    return Rule(1, "r", condition, threshold, 0, Scope(**{k: frozenset(v) for k, v in scope.items()}))


def m(n: int, **kw: object) -> MachineFact:
    base: dict[str, object] = {"site": "kz1", "device_id": f"mac{n}", "online": True, "mining": True,
                               "serial": f"S{n}", "rack": "A1", "owner": "123456789012", "owner_name": "Tau LLP",
                               "model": "S21", "hashrate_ths": 200.0, "nominal_ths": 200.0, "temp_c": 70.0,
                               "boards_dead": 0}
    base.update(kw)
    return MachineFact(**base)  # type: ignore[arg-type]


def test_hashrate_below_a_share_of_nominal() -> None:
    facts = Facts(machines=[m(1, hashrate_ths=150.0), m(2, hashrate_ths=170.0), m(3, mining=False, hashrate_ths=0.0),
                            m(4, online=False), m(5, nominal_ths=None)])
    seen = observe(rule(Condition.HASHRATE_LOW, 0.8), facts)
    # 150/200 = 0.75 < 0.8 holds; 170/200 = 0.85 does not; sleeping: no; offline: unknown; no nominal: unknown
    assert {k: o.holds for k, o in seen.items()} == {"machine:kz1/mac1": True, "machine:kz1/mac2": False,
                                                     "machine:kz1/mac3": False, "machine:kz1/mac4": None,
                                                     "machine:kz1/mac5": None}
    assert seen["machine:kz1/mac1"].value == 0.75 and "75%" in seen["machine:kz1/mac1"].message


def test_offline_temperature_boards() -> None:
    facts = Facts(machines=[m(1, online=False), m(2, temp_c=85.0), m(3, temp_c=85.5, boards_dead=2)])
    assert [o.holds for o in observe(rule(Condition.MACHINE_OFFLINE), facts).values()] == [True, False, False]
    # strictly above: 85.0 is not above 85; the offline machine's temperature is unknown
    assert [o.holds for o in observe(rule(Condition.TEMPERATURE_HIGH, 85), facts).values()] == [None, False, True]
    assert [o.holds for o in observe(rule(Condition.BOARD_DEAD, 2), facts).values()] == [None, False, True]


def test_scope_by_site_rack_owner_model_machine() -> None:
    facts = Facts(machines=[m(1), m(2, rack="B7"), m(3, site="kz2"), m(4, model="S19j Pro", owner="999999999999",
                                                                        owner_name="Other")])
    ids = lambda r: sorted(k.split("/")[1] for k in observe(r, facts))  # noqa: E731
    assert ids(rule(Condition.MACHINE_OFFLINE, sites={"kz1"})) == ["mac1", "mac2", "mac4"]
    assert ids(rule(Condition.MACHINE_OFFLINE, racks={"B7"})) == ["mac2"]
    assert ids(rule(Condition.MACHINE_OFFLINE, owners={"Tau LLP"})) == ["mac1", "mac2", "mac3"]
    assert ids(rule(Condition.MACHINE_OFFLINE, owners={"999999999999"})) == ["mac4"]
    assert ids(rule(Condition.MACHINE_OFFLINE, models={"s19J PRO"})) == ["mac4"]
    assert ids(rule(Condition.MACHINE_OFFLINE, machines={"S3", "mac1"})) == ["mac1", "mac3"]


def test_site_power_against_a_share_of_the_limit() -> None:
    facts = Facts(sites=[SiteFact("kz1", power_w=960_000, limit_w=1_000_000), SiteFact("kz2", power_w=5.0)])
    seen = observe(rule(Condition.SITE_POWER_HIGH, 0.95), facts)
    assert seen["site:kz1"].holds is True  # 960 kW > 950 kW
    assert seen["site:kz2"].holds is None  # no limit: not under quota control
    assert observe(rule(Condition.SITE_POWER_HIGH, 1.0), facts)["site:kz1"].holds is False


def test_hour_on_course_to_exceed_the_purchase() -> None:
    # 20 minutes left; 400 kWh used; 900 kW for 1/3 h = 300 kWh more: 700 kWh projected
    s = SiteFact("kz1", power_w=900_000, hour_used_kwh=400.0, hour_purchased_kwh=680.0, hour_remaining_s=1200)
    assert projected_hour_kwh(s) == 700.0
    assert observe(rule(Condition.HOUR_ENERGY_OVERRUN, 1.0), Facts(sites=[s]))["site:kz1"].holds is True
    assert observe(rule(Condition.HOUR_ENERGY_OVERRUN, 1.03), Facts(sites=[s]))["site:kz1"].holds is False  # 700.4


def test_grid_excursion_meter() -> None:
    facts = Facts(sites=[SiteFact("kz1", grid_stale=True, excursion_kwh=0.4, meter_diff_pct=-2.5, meter_hour="h"),
                         SiteFact("kz2", grid_stale=None, excursion_kwh=0.0, meter_diff_pct=1.0)])
    assert {k: o.holds for k, o in observe(rule(Condition.GRID_SIGNAL_STALE), facts).items()} == \
        {"site:kz1": True, "site:kz2": None}
    assert [o.holds for o in observe(rule(Condition.EXCURSION, 0.0), facts).values()] == [True, False]
    assert [o.holds for o in observe(rule(Condition.EXCURSION, 0.5), facts).values()] == [False, False]
    assert [o.holds for o in observe(rule(Condition.METER_MISMATCH, 2.0), facts).values()] == [True, False]


def test_gateway_silent_and_violations() -> None:
    facts = Facts(gateways=[GatewayFact("kz1", "gw1", True, 30.0), GatewayFact("kz1", "gw2", True, 120.0),
                            GatewayFact("kz1", "gw3", False, 5.0)],
                  violations=[ViolationFact(4, "unaccredited_pool", "hsc", "kz1", "mac1", "S1"),
                              ViolationFact(5, "licence", "hsc", "kz2", "mac9", "S9")])
    assert [o.holds for o in observe(rule(Condition.GATEWAY_SILENT, 60), facts).values()] == [False, True, True]
    seen = observe(rule(Condition.COMPLIANCE_VIOLATION, sites={"kz1"}), facts)
    assert list(seen) == ["violation:4"] and "unaccredited_pool on S1" in seen["violation:4"].message
    assert observe(rule(Condition.COMPLIANCE_VIOLATION), Facts(violations=None)) == {}


def test_with_keep_only_holding_machines_and_those_with_open_alerts_are_returned() -> None:
    facts = Facts(machines=[m(1, temp_c=90.0), m(2), m(3), m(4, online=False)])
    seen = observe(rule(Condition.TEMPERATURE_HIGH, 85), facts, keep={"machine:kz1/mac2"})
    assert {k: o.holds for k, o in seen.items()} == {"machine:kz1/mac1": True, "machine:kz1/mac2": False}
    assert seen["machine:kz1/mac2"].message == "S21 S2 (rack A1) at 70.0 °C (threshold 85 °C)"
