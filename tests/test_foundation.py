"""The skeleton itself: the CLI answers --help for each part, the catalogue and the wire schema hold."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from kuat import catalog
from kuat.cli import cli
from kuat.wire import v1


def test_cli_help_lists_subcommands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    for name in ("sim", "agent", "controller", "demo"):
        assert name in result.output


def test_sim_help() -> None:
    result = CliRunner().invoke(cli, ["sim", "run", "--help"])
    assert result.exit_code == 0, result.output
    assert "--site" in result.output


@pytest.mark.parametrize(
    ("name", "key"),
    [("Antminer S19j Pro", "S19j Pro"), ("ANTMINER S19 XP", "S19 XP"), ("M31SV10", "M31S"), ("S21", "S21")],
)
def test_catalog_lookup(name: str, key: str) -> None:
    spec = catalog.lookup(name)
    assert spec is not None and spec.key == key


def test_curve_matches_published_underclock_point() -> None:
    """DEVICES.md: an S19j Pro cut from 96 to 74.5 TH/s (-22 %) went from 2850 to 1905 W (-33 %)."""
    spec = catalog.MODELS["S19j Pro"]
    power_share = catalog.power_at_ratio(spec, 74.5 / 96) / catalog.power_at_ratio(spec, 1.0)
    assert power_share == pytest.approx(1905 / 2850, abs=0.03)
    assert catalog.power_at_ratio(spec, 0.7) / (0.7 * spec.nominal_ths) < spec.j_per_th  # efficiency improves
    watts = catalog.power_at_ratio(spec, 0.8)
    assert catalog.ratio_at_power(spec, watts) == pytest.approx(0.8)
    assert catalog.hashrate_at_power(spec, watts) == pytest.approx(0.8 * spec.nominal_ths)


def test_wire_rejects_bad_commands() -> None:
    with pytest.raises(ValidationError, match="needs device_id"):
        v1.Command(id="c1", kind=v1.CommandKind.SLEEP)
    with pytest.raises(ValidationError, match="finite"):
        v1.Command(id="c1", kind=v1.CommandKind.SET_POWER_TARGET, device_id="d", power_w=float("nan"))
    with pytest.raises(ValidationError, match="lease_s"):
        v1.Command(id="c1", kind=v1.CommandKind.SETPOINTS, setpoints=[])
    cmd = v1.Command(id="c2", kind=v1.CommandKind.SET_POWER_TARGET, device_id="d", power_w=2500)
    again = v1.Command.model_validate_json(v1.dumps(cmd))
    assert again.power_w == 2500 and again.kind == v1.CommandKind.SET_POWER_TARGET


def test_board_fields_round_trip_and_old_messages_still_parse() -> None:
    """Per-board control is additive: `Setpoint.boards_on`, `Capabilities.boards`, `Board.enabled` round-trip;
    a message without them (an older agent or controller) parses to the old meaning (all boards, none switchable)."""
    sp = v1.Setpoint(device_id="d", mode=v1.SetpointMode.RUN, boards_on=2)
    cmd = v1.Command(id="c", kind=v1.CommandKind.SETPOINTS, lease_s=60, setpoints=[sp])
    assert v1.Command.model_validate_json(v1.dumps(cmd)).setpoints == [sp]
    caps = v1.Capabilities(power_target=True, boards=True)
    assert v1.Capabilities.model_validate_json(caps.model_dump_json()) == caps
    board = v1.Board(index=1, hashrate_ths=0.0, enabled=False)
    assert v1.Board.model_validate_json(board.model_dump_json()) == board
    old = v1.Setpoint.model_validate_json('{"device_id": "d", "mode": "run"}')
    assert old.boards_on is None and not v1.Capabilities.model_validate_json("{}").boards
    assert v1.Board.model_validate_json('{"index": 0}').enabled
    for bad in ({"mode": "sleep", "boards_on": 1}, {"mode": "outlet_off", "boards_on": 2},
                {"mode": "run", "boards_on": 0}):
        with pytest.raises(ValidationError):
            v1.Setpoint(device_id="d", **bad)


def test_kuat_logs_survive_a_library_that_lowers_the_root_level(capsys: pytest.CaptureFixture[str]) -> None:
    """Importing pyasic sets the root logger to WARNING; the agent's INFO lines (e.g. 'SIGTERM received') must stay."""
    import logging

    from kuat.cli import setup_logging

    try:
        setup_logging("info")
        import pyasic.logger  # noqa: F401  (its init_logger runs at import)

        logging.getLogger().setLevel(logging.WARNING)  # as pyasic's init_logger does, in case it was imported before
        logging.getLogger("agent.cli_daemon").info("SIGTERM received: finishing the cycle and stopping")
        captured = capsys.readouterr()
        assert "SIGTERM received" in captured.err  # logs go to stderr: stdout carries a command's data only
        assert "SIGTERM received" not in captured.out
    finally:
        for name in ("kuat", "agent", "controller", "registry", "quota", "sim", "demo"):
            logging.getLogger(name).setLevel(logging.NOTSET)
