"""deploy/prometheus/kuat-alerts.yml: valid for promtool, its unit tests pass (promtool test rules), and every
kuat_* metric it names is one Kuat exports (the controller's /metrics of real services, the agent's render)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from agent.metrics import AgentHealth, render_metrics
from controller.runtime import build_services
from tests.alerts.site import settings

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = RULES_DIR / "kuat-alerts.yml"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian package prometheus; scripts/bootstrap.sh installs it)")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_rules() -> None:
    out = run("check", "rules", RULES.name)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 20 rules found" in out.stdout


def test_promtool_unit_tests_pass() -> None:
    out = run("test", "rules", "kuat-alerts.test.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def exported(text: str) -> set[str]:
    names = set()
    for kind_line in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        name, kind = kind_line
        names |= {name, f"{name}_sum", f"{name}_count"} if kind == "summary" else {name}
    return names


def test_every_metric_the_rules_name_is_exported(tmp_path: Path) -> None:
    svc = build_services(settings(tmp_path), with_ingest=False)
    try:
        names = exported(svc.metrics.render())
    finally:
        svc.close()
        svc.engine.dispose()
    names |= exported(render_metrics(AgentHealth(True, 1, 0, 1.0, 1.0, 1, 1, 1, 1, 0, 0, 1, 0, False, 30.0, 5.0)))
    doc = yaml.safe_load(RULES.read_text())
    used = {m for g in doc["groups"] for r in g["rules"] for m in re.findall(r"\bkuat_[a-z_]+", r["expr"])}
    assert len(used) >= 15
    assert used - names == set(), f"rules name metrics Kuat does not export: {sorted(used - names)}"
    for group in doc["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("info", "warning", "critical"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
