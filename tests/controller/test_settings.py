from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from controller.settings import EnergySource, load_settings


def test_defaults_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "controller.yaml"
    cfg.write_text(
        "broker: {host: 127.0.0.1, port: 1999}\nsites: [kz1]\n"
        "meters:\n  kz1:\n    default: grid\n    devices: {pdu-solar: renewables, 'aa:bb': own_generation}\n"
    )
    monkeypatch.setenv("KUAT_CONTROLLER_BROKER__PORT", "2001")
    s = load_settings(cfg)
    assert s.broker.port == 2001  # environment beats the file
    assert s.sites == ["kz1"]
    assert s.database_url == "sqlite:///./var/kuat.sqlite"
    assert s.source_of("kz1", "aa:bb") is EnergySource.OWN_GENERATION
    assert s.source_of("kz1", "cc:dd", pdu_id="pdu-solar") is EnergySource.RENEWABLES
    assert s.source_of("kz1", "cc:dd") is EnergySource.GRID
    assert s.source_of("other", "aa:bb") is EnergySource.GRID


def test_toml_file(tmp_path: Path) -> None:
    cfg = tmp_path / "controller.toml"
    cfg.write_text('database_url = "sqlite:///x.sqlite"\n[influx]\nurl = "http://127.0.0.1:8086"\ntoken = "t"\n')
    s = load_settings(cfg)
    assert s.influx is not None and s.influx.url == "http://127.0.0.1:8086" and s.influx.batch_size == 5000


def test_production_refuses_default_secrets(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="api_keys"):
        load_settings(None, production=True, api_keys=[{"name": "ops", "role": "operator", "key": "change-me"}])
    ok = load_settings(None, production=True, api_keys=[{"name": "ops", "role": "operator", "key": "x" * 40}])
    assert ok.production


def test_bad_input_names_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("broker: {port: 99999}\nsurprise: 1\n")
    with pytest.raises(ValidationError) as err:
        load_settings(cfg)
    text = str(err.value)
    assert "broker.port" in text and "surprise" in text
    with pytest.raises(ValueError, match="does not exist"):
        load_settings(tmp_path / "missing.yaml")
    (tmp_path / "c.ini").write_text("x=1")
    with pytest.raises(ValueError, match=r"use \.toml, \.yaml"):
        load_settings(tmp_path / "c.ini")
    with pytest.raises(ValidationError, match="site name"):
        load_settings(None, sites=["kz/1"])


def test_quota_runs_show_in_metrics() -> None:
    from controller.metrics import IngestMetrics

    m = IngestMetrics()
    m.record_quota_run("kz1", 0.125, 900_000.0, 890_000.0, 880_000.0)
    m.record_quota_run("kz1", 0.075, 900_000.0, 895_000.0, 889_000.0)
    text = m.render()
    assert "kuat_quota_allocation_seconds_count 2" in text and "kuat_quota_allocation_seconds_sum 0.2" in text
    assert "kuat_quota_last_allocation_seconds 0.075" in text
    assert 'kuat_quota_limit_watts{site="kz1"} 900000' in text
    assert 'kuat_quota_measured_watts{site="kz1"} 889000' in text
