"""Bootstrap API keys from the settings into the registry's key table (hashed as registry.auth hashes them).

Keys normally come from `kuat registry create-key` (random, shown once). A deployment that must know its keys in
advance (the demo, CI, a config-managed site) lists them in the settings; production refuses weak ones there.
"""

from __future__ import annotations

import logging
from typing import Any

from controller.settings import ApiKey as ApiKeySetting
from registry import auth
from registry.models import Role
from serverkit.auth import Scope

log = logging.getLogger(__name__)


def ensure_api_keys(registry: Any, keys: list[ApiKeySetting]) -> int:
    """Store each configured key that is not there yet; returns how many were added."""
    added = 0
    for key in keys:
        try:
            role = Role(key.role)
        except ValueError:
            raise ValueError(f"api_keys[{key.name}].role: {key.role!r} is not one of "
                             f"{', '.join(r.value for r in Role)}") from None  # fmt: skip
        if len(key.key) < auth.PREFIX_LEN:
            raise ValueError(f"api_keys[{key.name}].key: at least {auth.PREFIX_LEN} characters")
        with registry.transaction() as session:
            if auth.authenticate(session, key.key) is not None:
                continue
            try:
                scope = Scope.from_json(key.scope)
            except ValueError as exc:
                raise ValueError(f"api_keys[{key.name}].scope: {exc}") from None
            auth.store_key(session, key.name, role, key.key, scope)
            added += 1
            log.info("API key %s (%s) added from the settings", key.name, role.value)
    return added
