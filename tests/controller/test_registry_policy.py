"""Without a registry the controller fails closed (issue 11, REGULATION.md: only registered machines may mine): no
`registry:` section -> no machine has the right to power, and an error line at every start says why and how to
configure one; `registry: {mode: none_lab}` is the explicit lab opt-out, a warning at every start. (The loop acting
on it, machine by machine, is tests/national/test_loop_rights.py.)"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from controller.runtime import Services, build_services
from controller.settings import NoRegistryLab, load_settings
from kuat.wire import v1

SITE = "kz1"
WIRING = "controller.registry_link.wiring"


def sample() -> v1.MinerSample:
    return v1.MinerSample(device_id="m1", ip="127.0.0.9", available=True, state=v1.MinerState.MINING,
                          model="S19j Pro", serial="SN-1", power_w=3000.0, power_source=v1.PowerSource.REPORTED,
                          pools=[v1.Pool(url="stratum+tcp://pool.kz:3333")])  # fmt: skip


def build(tmp_path: Path, **over: object) -> Services:
    settings = load_settings(None, database_url=f"sqlite:///{tmp_path / 'kuat.sqlite'}", sites=[SITE], **over)
    return build_services(settings, with_ingest=False)


def close(svc: Services) -> None:
    svc.close()
    svc.engine.dispose()


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == WIRING and r.levelno == level]


def test_no_registry_section_means_no_machine_may_mine(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=WIRING):
        svc = build(tmp_path)
    try:
        assert svc.settings.registry is None and svc.quota is not None and svc.quota.loop is not None
        rights = svc.quota.loop.rights
        assert rights is not None and rights()("m1", sample()) is False
        (error,) = lines(caplog, logging.ERROR)
        assert "NO machine has the right to mine" in error and "REGULATION.md" in error
        assert "registry: {mode: remote" in error and "registry: {mode: none_lab}" in error  # how to configure
    finally:
        close(svc)


def test_the_lab_opt_out_warns_at_every_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = tmp_path / "controller.yaml"
    cfg.write_text(f"database_url: sqlite:///{tmp_path / 'kuat.sqlite'}\nsites: [{SITE}]\n"
                   "registry: {mode: none_lab}\n")
    settings = load_settings(cfg)
    assert isinstance(settings.registry, NoRegistryLab)
    with caplog.at_level(logging.WARNING, logger=WIRING):
        for _ in range(2):  # two starts, two warnings
            svc = build_services(settings, with_ingest=False)
            assert svc.quota is not None and svc.quota.loop is not None and svc.quota.loop.rights is None
            close(svc)
    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 2 and all("power rights are NOT enforced" in w for w in warnings)
    assert not lines(caplog, logging.ERROR)


def test_the_opt_out_by_environment_and_the_link_settings_still_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUAT_CONTROLLER_REGISTRY__MODE", "none_lab")
    assert isinstance(load_settings(None).registry, NoRegistryLab)
    monkeypatch.delenv("KUAT_CONTROLLER_REGISTRY__MODE")
    with pytest.raises(ValidationError, match=r"registry\.mode=remote needs url and key_file"):
        load_settings(None, registry={"mode": "remote", "dpc": "DPC-A"})
    with pytest.raises(ValidationError, match="dpc"):
        load_settings(None, registry={"mode": "none_lab", "dpc": "DPC-A"})  # the opt-out takes nothing else
    assert load_settings(None, registry={"dpc": "DPC-A"}).registry.mode == "embedded"  # type: ignore[union-attr]


def test_the_planner_counts_on_no_machine_without_a_registry(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from controller.planner.wiring import dark_devices

    svc = build(tmp_path)
    try:
        assert svc.telemetry.ingest(v1.TelemetryBatch(site=SITE, gateway="gw1", seq=1, ts=datetime.now(UTC),
                                                      miners=[sample()]))  # fmt: skip
        dark = dark_devices(svc)
        assert dark is not None and dark() == {"m1"}  # bids for a machine that may not mine would be worthless
    finally:
        close(svc)
