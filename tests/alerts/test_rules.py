"""alerts.rules.check_rule: a good document becomes a Rule; a bad one is refused with every bad field named."""

from __future__ import annotations

from alerts.rules import Condition, Scope, Severity, check_rule

CHANNELS = {"dashboard", "ops-webhook", "night-mail"}


def test_a_full_rule_is_read_with_defaults_filled() -> None:
    rule, issues = check_rule({"name": " hot S21 ", "condition": "temperature_high", "threshold": 90, "sustain_s": 120,
                               "scope": {"sites": ["kz1"], "models": ["S21"], "racks": []},
                               "channels": ["ops-webhook", "dashboard", "ops-webhook"], "repeat_s": 600}, CHANNELS, 7)
    assert issues == []
    assert rule is not None
    assert (rule.id, rule.name, rule.condition, rule.threshold, rule.sustain_s) == (7, "hot S21",
                                                                                    Condition.TEMPERATURE_HIGH, 90, 120)
    assert rule.scope == Scope(sites=frozenset({"kz1"}), models=frozenset({"S21"}))
    assert rule.channels == ("ops-webhook", "dashboard")  # duplicates dropped, order kept
    assert (rule.severity, rule.repeat_s, rule.enabled, rule.notify_resolved) == (Severity.WARNING, 600, True, True)


def test_default_threshold_of_the_condition() -> None:
    rule, _ = check_rule({"name": "slow", "condition": "hashrate_low"}, CHANNELS)
    assert rule is not None and rule.threshold == 0.8 and rule.channels == ("dashboard",)


def test_every_bad_field_is_named_at_once() -> None:
    rule, issues = check_rule({"name": "", "condition": "site_power_high", "threshold": 0, "sustain_s": -5,
                               "scope": {"racks": ["A1"], "halls": ["x"]}, "severity": "panic",
                               "channels": ["pager"], "repeat_s": 10, "enabled": "yes", "colour": "red"}, CHANNELS)
    assert rule is None
    fields = {i.field: i.reason for i in issues}
    assert set(fields) == {"colour", "name", "threshold", "sustain_s", "scope.racks", "scope.halls", "severity",
                           "channels", "repeat_s", "enabled"}
    assert "above 0" in fields["threshold"]
    assert "does not apply to site_power_high" in fields["scope.racks"]
    assert "pager" in fields["channels"]
    assert "from 60" in fields["repeat_s"]


def test_threshold_refused_where_the_condition_takes_none_and_whole_boards() -> None:
    _, issues = check_rule({"name": "x", "condition": "machine_offline", "threshold": 3}, CHANNELS)
    assert [(i.field, i.reason) for i in issues] == [("threshold", "machine_offline takes no threshold")]
    _, issues = check_rule({"name": "x", "condition": "board_dead", "threshold": 1.5}, CHANNELS)
    assert [i.field for i in issues] == ["threshold"] and "whole number" in issues[0].reason
    _, issues = check_rule({"name": "x", "condition": "nope"}, CHANNELS)
    assert [i.field for i in issues] == ["condition"]
    _, issues = check_rule({"name": "x"}, CHANNELS)
    assert issues[0].field == "condition" and issues[0].reason.startswith("required")


def test_non_finite_and_boolean_numbers_are_refused() -> None:
    for bad in (float("nan"), float("inf"), True, "90"):
        _, issues = check_rule({"name": "x", "condition": "temperature_high", "threshold": bad}, CHANNELS)
        assert [i.field for i in issues] == ["threshold"], bad
