"""Load the role's mosquitto password-file module (an Ansible library file, not a package) for direct tests."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.deploy.scratch import ANSIBLE_DIR

MODULE_PATH = ANSIBLE_DIR / "roles/kuat_controller/library/kuat_mosquitto_passwd.py"


def load_passwd_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kuat_mosquitto_passwd", MODULE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
