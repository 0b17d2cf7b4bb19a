"""Who sees which licensee's money: the one place that decides it.

Until serverkit's `Principal(name, role, scope)` lands on main, a key's scope is the settings'
`money.licensee_keys` (key name -> the BIN/IINs it may see): a key listed there sees only those licensees,
whatever its role; a `tenant` key not listed sees none; operator and regulator keys see every licensee at the
DPC. When serverkit lands, `may_see` becomes `licensee in principal.scope.licensees` (one edit).
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.settings import ControllerSettings
from registry.auth import Principal
from registry.models import Role

READERS = (Role.OPERATOR, Role.REGULATOR, Role.TENANT)  # may call the money routes at all
ALL_LICENSEES = (Role.OPERATOR, Role.REGULATOR)


def may_see(principal: Principal, licensee: str, settings: ControllerSettings) -> bool:
    scope = settings.money.licensee_keys.get(principal.name)
    if scope is not None:
        return licensee in scope
    return principal.role in ALL_LICENSEES


def visible(principal: Principal, licensees: Iterable[str], settings: ControllerSettings) -> list[str]:
    return [b for b in licensees if may_see(principal, b, settings)]
