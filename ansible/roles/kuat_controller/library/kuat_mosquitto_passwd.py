#!/usr/bin/python3
"""Ansible module: manage a mosquitto password file idempotently (PBKDF2-SHA512, mosquitto 2 `$7$` format).

`mosquitto_passwd -b` salts every call, so calling it on each run would report a change every time. This module
keeps an entry whose hash already verifies against the wanted password, hashes only new or changed passwords, and
drops users that are no longer listed. Passwords never reach the log (no_log) and only hashes reach the disk.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import tempfile
from typing import Any

DOCUMENTATION = r"""
module: kuat_mosquitto_passwd
short_description: Manage a mosquitto 2 password file (hashed at rest), idempotently
options:
  path: {description: The password file., type: path, required: true}
  users: {description: "user name -> clear-text password", type: dict, required: true}
  mode: {description: File mode., type: str, default: "0640"}
  iterations: {description: PBKDF2 iterations for new hashes (mosquitto's default is 101)., type: int, default: 101}
"""

HASH_ID = "7"  # mosquitto 2: PBKDF2-HMAC-SHA512
SALT_BYTES = 12
DIGEST_BYTES = 64


def hash_password(password: str, iterations: int = 101, salt: bytes | None = None) -> str:
    """`$7$<iterations>$<base64 salt>$<base64 digest>`, as `mosquitto_passwd` writes it."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, DIGEST_BYTES)
    return f"${HASH_ID}${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """True if `encoded` (a `$7$` entry) is the hash of `password`; any other format counts as a mismatch."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[1] != HASH_ID:
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        digest = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    candidate = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(digest))
    return hmac.compare_digest(candidate, digest)


def parse_passwd(text: str) -> dict[str, str]:
    """user -> encoded hash; blank lines and comments are ignored."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        user, encoded = line.split(":", 1)
        entries[user] = encoded
    return entries


def render_passwd(current: dict[str, str], wanted: dict[str, str], iterations: int) -> tuple[str, list[str]]:
    """The new file text (users sorted) and the names of users whose entry changed, appeared or disappeared."""
    changed = sorted(set(current) - set(wanted))
    lines = []
    for user in sorted(wanted):
        encoded = current.get(user)
        if encoded is None or not verify_password(wanted[user], encoded):
            encoded = hash_password(wanted[user], iterations)
            changed.append(user)
        lines.append(f"{user}:{encoded}\n")
    return "".join(lines), sorted(changed)


def check_user_names(users: dict[str, str]) -> str | None:
    for user, password in users.items():
        if not user or ":" in user or any(c.isspace() for c in user):
            return f"invalid MQTT user name {user!r}: no colon, no white space, not empty"
        if not isinstance(password, str) or not password:
            return f"MQTT user {user!r} has an empty password"
    return None


def write_atomically(path: str, text: str, mode: int) -> None:
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".kuat-passwd-")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run_module() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "users": {"type": "dict", "required": True, "no_log": True},
            "mode": {"type": "str", "default": "0640"},
            "iterations": {"type": "int", "default": 101},
        },
        supports_check_mode=True,
    )
    params: dict[str, Any] = module.params
    problem = check_user_names(params["users"])
    if problem:
        module.fail_json(msg=problem)
    path = params["path"]
    current: dict[str, str] = {}
    if os.path.exists(path):
        with open(path) as fh:
            current = parse_passwd(fh.read())
    text, changed_users = render_passwd(current, params["users"], params["iterations"])
    mode = int(params["mode"], 8)
    mode_differs = os.path.exists(path) and (os.stat(path).st_mode & 0o7777) != mode
    changed = bool(changed_users) or not os.path.exists(path) or mode_differs
    if changed and not module.check_mode:
        write_atomically(path, text, mode)
    module.exit_json(changed=changed, path=path, changed_users=changed_users)


if __name__ == "__main__":
    run_module()
