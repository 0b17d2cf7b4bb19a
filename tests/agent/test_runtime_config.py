"""Agent configuration: YAML + environment, validation with clear errors, the production password rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from agent.cli import cli as agent_cli
from agent.config import ConfigError, config_from_dict, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "agent" / "examples" / "agent.yaml"


def _minimal(**extra: object) -> dict[str, object]:
    return {"site": "s1", "gateway": "gw1", **extra}


def test_example_config_loads_with_its_outlet_map() -> None:
    cfg = load_config(EXAMPLE)
    assert (cfg.site, cfg.gateway) == ("almaty-1", "gw1")
    assert cfg.poll.interval_s == 10
    assert [m.outlet.outlet for m in cfg.devices.miners if m.outlet] == [1, 2]
    assert cfg.devices.miners[1].protected is True
    assert cfg.devices.pdus[0].device_id == "pdu-a01-1"


def test_defaults() -> None:
    cfg = config_from_dict(_minimal())
    assert cfg.poll.interval_s == 10.0
    assert cfg.broker.protocol == "3.1.1"
    assert cfg.failsafe.mode == "sleep_unprotected"
    assert cfg.client_id() == "kuat-s1-gw1"


def test_environment_overrides_the_file_field_by_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(_minimal(broker={"host": "10.0.0.5", "port": 1884, "password": "from-file"})))
    monkeypatch.setenv("KUAT_AGENT_BROKER__PASSWORD", "from-env")
    monkeypatch.setenv("KUAT_AGENT_POLL__INTERVAL_S", "2.5")
    cfg = load_config(path)
    assert cfg.broker.password == "from-env"
    assert cfg.broker.host == "10.0.0.5" and cfg.broker.port == 1884  # the rest of broker: still from the file
    assert cfg.poll.interval_s == 2.5


@pytest.mark.parametrize("password", [None, "changeme", "  ", "password"])
def test_production_refuses_placeholder_passwords(password: str | None) -> None:
    broker = {"password": password} if password is not None else {}
    with pytest.raises(ConfigError, match=r"production: true needs a real broker.password"):
        config_from_dict(_minimal(production=True, broker=broker))
    config_from_dict(_minimal(production=False, broker=broker))  # a lab may use them


def test_production_accepts_a_real_password_and_refuses_insecure_tls() -> None:
    config_from_dict(_minimal(production=True, broker={"password": "k7#Qe!v9s"}))
    with pytest.raises(ConfigError, match="insecure"):
        config_from_dict(_minimal(production=True, broker={"password": "k7#Qe!v9s", "tls": {"insecure": True}}))


def test_outlet_map_must_name_a_known_pdu_and_free_outlets() -> None:
    pdus = [{"ip": "127.0.0.9", "id": "pdu-x"}]
    with pytest.raises(ConfigError, match="unknown pdu 'pdu-y'"):
        config_from_dict(_minimal(devices={"pdus": pdus, "miners": [
            {"ip": "127.0.0.1", "outlet": {"pdu": "pdu-y", "outlet": 1}}]}))
    with pytest.raises(ConfigError, match="both on pdu-x outlet 3"):
        config_from_dict(_minimal(devices={"pdus": pdus, "miners": [
            {"ip": "127.0.0.1", "outlet": {"pdu": "pdu-x", "outlet": 3}},
            {"ip": "127.0.0.2", "outlet": {"pdu": "pdu-x", "outlet": 3}}]}))


def test_bad_values_are_reported_with_their_place() -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict(_minimal(poll={"interval_s": 0}, devices={"miners": [{"ip": "not-an-ip"}]}))
    text = str(err.value)
    assert "poll.interval_s" in text and "devices.miners.0.ip" in text and "not-an-ip" in text
    with pytest.raises(ConfigError, match="cap_w needs cap_w"):
        config_from_dict(_minimal(failsafe={"mode": "cap_w"}))
    with pytest.raises(ConfigError, match="Extra inputs"):
        config_from_dict(_minimal(brokr={}))  # a typo is not silently ignored


def test_unreadable_or_malformed_files_give_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)


def test_run_check_validates_and_reports(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(_minimal(buffer={"path": str(tmp_path / "b.sqlite")})))
    result = CliRunner().invoke(agent_cli, ["run", "--config", str(good), "--check"])
    assert result.exit_code == 0, result.output
    assert "config OK: site s1, gateway gw1: 0 miners" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"site": "s1"}))
    result = CliRunner().invoke(agent_cli, ["run", "--config", str(bad), "--check"])
    assert result.exit_code != 0
    assert "gateway: Field required" in result.output


def test_run_reports_an_unusable_buffer_path_clearly(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(yaml.safe_dump(_minimal(buffer={"path": str(blocker / "buffer.sqlite")})))
    result = CliRunner().invoke(agent_cli, ["run", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "cannot start the agent" in result.output and "a-file" in result.output
