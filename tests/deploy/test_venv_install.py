"""The roles' virtualenv install (kuat_common/tasks/venv.yml) for real: a venv is created, the release wheel is
installed into it, a second run does nothing, and a new kuat_install_version upgrades it.

No network and no wheel-building tools are assumed here, so the test packs its own small wheel of the `kuat`
package (a valid wheel: dist-info with METADATA, WHEEL, entry points and RECORD) and installs it with
`--no-deps --no-index`; dependencies come from the package index on a real host.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.deploy.scratch import ANSIBLE_DIR, PROJECT, ScratchDeployment, ansible_playbook

pytestmark = pytest.mark.integration

PLAYBOOK = """\
- name: Install Kuat into a virtualenv under a scratch root
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: The roles' virtualenv install, alone
      ansible.builtin.include_role:
        name: kuat_common
        tasks_from: venv.yml
"""


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(out: Path, version: str) -> Path:
    """kuat-<version>-py3-none-any.whl with the `kuat` package and the `kuat` console script."""
    dist_info = f"kuat-{version}.dist-info"
    files: dict[str, bytes] = {
        f"kuat/{path.relative_to(PROJECT / 'kuat')}": path.read_bytes()
        for path in sorted((PROJECT / "kuat").rglob("*.py"))
    }
    files[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: kuat\nVersion: {version}\n".encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: kuat-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{dist_info}/entry_points.txt"] = b"[console_scripts]\nkuat = kuat.cli:main\n"
    record = [_record_line(name, data) for name, data in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = out / f"kuat-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel


def test_venv_is_built_once_and_upgraded_when_the_version_changes(tmp_path: Path) -> None:
    if ansible_playbook() is None:
        pytest.skip("ansible-playbook not installed (Debian package ansible)")
    scratch = ScratchDeployment(tmp_path, "venvsite", [], 1)  # only for its ansible environment
    scratch.vault_password_file.write_text("unused\n")
    root = tmp_path / "host"
    playbook = tmp_path / "venv.yml"
    playbook.write_text(PLAYBOOK)

    def run(version: str) -> dict[str, int]:
        wheel = build_wheel(tmp_path, version)
        extra = {"kuat_root": str(root), "kuat_runtime_root": str(root), "kuat_manage_services": False,
                 "kuat_install_source": str(wheel), "kuat_install_version": version,
                 "kuat_pip_extra_args": "--no-deps --no-index"}
        (tmp_path / "extra.yml").write_text(yaml.safe_dump(extra))
        proc = subprocess.run(
            ["ansible-playbook", "-i", "localhost,", "-e", f"@{tmp_path / 'extra.yml'}", str(playbook)],
            capture_output=True, text=True, timeout=300, env=scratch.env(), cwd=ANSIBLE_DIR,
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        return dict(yaml.safe_load(proc.stdout[proc.stdout.index("{"):])["stats"]["localhost"])

    venv_python = root / "opt/kuat/venv/bin/python"

    def installed_version() -> str:
        code = "import importlib.metadata as m; print(m.version('kuat'))"
        # cwd outside the checkout: its kuat.egg-info would otherwise answer for the venv's own metadata
        return subprocess.run([str(venv_python), "-c", code], capture_output=True, text=True, check=True,
                              timeout=60, cwd=tmp_path).stdout.strip()

    assert run("0.1.0")["changed"] > 0
    assert installed_version() == "0.1.0"
    assert (root / "opt/kuat/venv/bin/kuat").is_file()
    assert run("0.1.0")["changed"] == 0
    assert run("0.1.1")["changed"] > 0
    assert installed_version() == "0.1.1"
