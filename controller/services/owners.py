"""Who owns a machine, for energy per owner: the registry's owner of the HSC (by serial), else "unassigned".

The ingest path must not query the registry per sample, so the map is held in memory and replaced wholesale by a
periodic refresh (a scheduler job) from whatever `load` returns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from controller.live import UNASSIGNED

log = logging.getLogger(__name__)


class OwnerDirectory:
    def __init__(self, load: Callable[[], dict[str, str]] | None = None) -> None:
        self._load = load
        self._by_serial: dict[str, str] = {}

    def owner(self, serial: str | None) -> str:
        if serial is None:
            return UNASSIGNED
        return self._by_serial.get(serial, UNASSIGNED)

    def replace(self, by_serial: dict[str, str]) -> None:
        self._by_serial = dict(by_serial)

    def refresh(self) -> int:
        """Reload the map; on failure keep the old one (energy stays attributed as before)."""
        if self._load is None:
            return 0
        try:
            self.replace(self._load())
        except Exception:
            log.exception("owner map refresh failed; keeping %d known owners", len(self._by_serial))
        return len(self._by_serial)
