"""The capability matrix is generated from the code and the tests, and the agent only reports what it says works."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from agent.drivers.state import capabilities_for
from agent.firmware import FAMILIES, matrix
from sim.server import SimServer
from tests.agent.test_whatsminer_v3_sim import mix

__all__ = ["mix"]

ROOT = Path(__file__).resolve().parents[2]


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("capabilities_script", ROOT / "scripts" / "capabilities.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checked_in_matrix_is_what_the_code_and_tests_give() -> None:
    for path, text in generator().generate().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} is stale: python scripts/capabilities.py --write"


def test_every_verifies_mark_names_a_known_family_and_control() -> None:
    collected = generator().collect_verified(ROOT / "tests")
    assert collected, "no test is marked @pytest.mark.verifies"
    for family, controls in collected.items():
        assert family in FAMILIES, family
        assert set(controls) <= set(matrix.CONTROLS), (family, controls)
        for tests in controls.values():
            for test in tests:
                path, _, name = test.partition("::")
                assert f"def {name}(" in (ROOT / path).read_text(), test


def test_unverified_controls_are_hidden_from_the_quota_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    # as if no test verified Braiins OS's controls (as before its simulator existed): claimed, hidden
    monkeypatch.setitem(matrix.CHECKED_IN.verified, "braiins", {})
    assert FAMILIES["braiins"].capabilities.power_target and not matrix.is_verified("braiins", "power_target")
    gated = capabilities_for("braiins", "S19j Pro")
    assert not gated.power_target and not gated.sleep and not gated.boards
    claimed = capabilities_for("braiins", "S19j Pro", gate=False)
    assert claimed.power_target and claimed.sleep and claimed.boards
    monkeypatch.setitem(matrix.CHECKED_IN.verified, "braiins", {"power_target": ("t",), "sleep": ("t",)})
    assert not capabilities_for("braiins", "S19j Pro").boards  # boards claimed but not verified: hidden alone
    # LuxOS power targets and Whatsminer sleep are verified on the wire: reported as they are
    assert capabilities_for("luxos", "S19j Pro").power_target
    assert capabilities_for("whatsminer", "M30S").sleep and capabilities_for("whatsminer", "M30S").power_target_reboots
    assert capabilities_for("antminer", "S19j Pro").sleep and not capabilities_for("antminer", "S19j Pro").power_target
    assert not capabilities_for("luxos", "S19j Pro").boards  # no firmware but Braiins OS claims single boards


def test_matrix_rows_cover_every_family_and_model_of_its_make() -> None:
    rows = matrix.rows()
    for fw in FAMILIES.values():
        assert any(r.family == fw.name for r in rows), fw.name
    s19 = next(r for r in rows if (r.family, r.model) == ("luxos", "S19j Pro"))
    assert s19.power_target.endswith(" W") and "power_target" in s19.evidence and s19.recordings


def _kuat(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kuat.cli", "agent", "capabilities", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_cli_prints_the_matrix_as_table_and_json() -> None:
    table = _kuat()
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:2] == ["firmware", "model"]
    assert any(line.startswith("braiins") and "verified" in line for line in table.stdout.splitlines())
    rows = json.loads(_kuat("--json").stdout)
    assert {r["family"] for r in rows} == set(FAMILIES)


@pytest.mark.integration
async def test_cli_shows_one_simulated_miners_row(mix: SimServer) -> None:
    miner = next(m for m in mix.site.miners if m.d.firmware == "luxos")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kuat.cli", "agent", "capabilities", miner.ip, "--port-offset",
        str(mix.config.port_offset), "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert (report["family"], report["model"]) == ("luxos", "S19j Pro")
    assert report["reported"]["power_target"] is True
    assert "power_target" in report["matrix"]["evidence"]
