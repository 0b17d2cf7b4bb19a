"""`InProcessDpcPort`: the contract's DpcPort served by a registry in the same process (one DPC on one machine, the
demo's embedded mode). It is bound to DPC codes like an HTTP key, and raises what the HTTP transport raises:
`PortRefused` for a submission refused for good (the status an HTTP call would get, 403/404/409/422), `PortUnavailable`
when the database cannot be reached (nothing was applied for sure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy.exc import OperationalError

from registry.contract.v1 import (
    MAX_FEED_PAGE,
    AllowanceIn,
    AllowanceOut,
    ApplicationBatch,
    ApplicationReceipt,
    FeedPage,
    PortRefused,
    PortUnavailable,
    SightingBatch,
    SightingReceipt,
)
from registry.national.service import NationalRegistry
from serverkit.db import SessionFactory
from serverkit.errors import KuatError
from serverkit.timeutil import Clock, system_clock

T = TypeVar("T")


class InProcessDpcPort:
    """A DpcPort over a local registry database, for the DPCs in `dpc_codes` only."""

    def __init__(self, session_factory: SessionFactory, dpc_codes: Iterable[str], clock: Clock = system_clock, *,
                 actor: str = "dpc:in-process", fresh_for: timedelta = timedelta(minutes=15)) -> None:
        self.registry = NationalRegistry(session_factory, clock, fresh_for=fresh_for)
        self.dpc_codes = frozenset(dpc_codes)
        self.actor = actor

    def _call(self, dpc: str, run: Callable[[], T]) -> T:
        if dpc not in self.dpc_codes:
            raise PortRefused(403, f"this port is not bound to DPC {dpc}")
        try:
            return run()
        except KuatError as exc:
            if exc.status_code >= 500:
                raise PortUnavailable(str(exc)) from exc
            raise PortRefused(exc.status_code, str(exc)) from exc
        except OperationalError as exc:
            raise PortUnavailable(f"registry database: {exc.orig}") from exc

    def submit_sightings(self, dpc: str, batch: SightingBatch, idempotency_key: str) -> SightingReceipt:
        return self._call(dpc, lambda: self.registry.submit_sightings(dpc, batch, idempotency_key, self.actor))

    def submit_applications(self, dpc: str, batch: ApplicationBatch, idempotency_key: str) -> ApplicationReceipt:
        return self._call(dpc, lambda: self.registry.submit_applications(dpc, batch, idempotency_key, self.actor))

    def submit_allowance(self, dpc: str, allowance: AllowanceIn, idempotency_key: str) -> AllowanceOut:
        return self._call(dpc, lambda: self.registry.submit_allowance(dpc, allowance, idempotency_key, self.actor))

    def feed(self, dpc: str, after: int, limit: int = 1000) -> FeedPage:
        return self._call(dpc, lambda: self.registry.feed(dpc, after, max(1, min(limit, MAX_FEED_PAGE))))
