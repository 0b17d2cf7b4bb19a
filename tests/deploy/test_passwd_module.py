"""The role's password-file module: the same format as mosquitto_passwd, and idempotent."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.deploy.passwd_module import load_passwd_module
from tests.support.servers import require_binary

passwd = load_passwd_module()


def test_verifies_a_hash_written_by_mosquitto_passwd(tmp_path: Path) -> None:
    tool = require_binary("mosquitto_passwd", "mosquitto")
    path = tmp_path / "passwd"
    path.touch()
    subprocess.run([tool, "-b", str(path), "gw1", "s3cret-Password"], check=True, timeout=30)
    entries = passwd.parse_passwd(path.read_text())
    assert passwd.verify_password("s3cret-Password", entries["gw1"])
    assert not passwd.verify_password("s3cret-password", entries["gw1"])


def test_rendering_again_with_the_same_passwords_changes_nothing() -> None:
    wanted = {"gw1": "one-long-password", "kuat-controller": "another-long-password"}
    text, changed = passwd.render_passwd({}, wanted, 101)
    assert changed == ["gw1", "kuat-controller"]
    again, changed_again = passwd.render_passwd(passwd.parse_passwd(text), wanted, 101)
    assert (again, changed_again) == (text, [])


def test_a_changed_password_rehashes_only_that_user_and_removed_users_go() -> None:
    text, _ = passwd.render_passwd({}, {"gw1": "first-password-1", "gw2": "first-password-2", "old": "x"}, 101)
    current = passwd.parse_passwd(text)
    new_text, changed = passwd.render_passwd(current, {"gw1": "first-password-1", "gw2": "rotated-password"}, 101)
    assert changed == ["gw2", "old"]
    new = passwd.parse_passwd(new_text)
    assert new["gw1"] == current["gw1"]
    assert passwd.verify_password("rotated-password", new["gw2"])
    assert "old" not in new


@pytest.mark.parametrize("bad", ["", "$6$abc$def", "$7$101$!!!$???", "$7$x$AAAA$AAAA"])
def test_malformed_entries_never_verify(bad: str) -> None:
    assert not passwd.verify_password("anything", bad)


@pytest.mark.parametrize(("users", "problem"), [({"a:b": "pw"}, "invalid MQTT user name"), ({"gw1": ""}, "empty")])
def test_bad_user_names_and_empty_passwords_are_refused(users: dict[str, str], problem: str) -> None:
    assert problem in (passwd.check_user_names(users) or "")
