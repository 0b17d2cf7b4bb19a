"""The national registry's writes: applications from DPCs, the authority's decisions, allowances, and the reference
rows (licensees, DPCs, pools) with the feed items they cause. Every write is one transaction that holds the audit
head's lock, records its actor in the audit chain and appends the feed items it causes.

Lifecycle of a machine (`Registration.status`), driven by applications and the authority:
    inclusion application -> submitted; authority includes (issues the registry number) -> included, or rejects
    -> rejected (a new application may follow); authority suspends -> suspended -> reinstated -> included;
    an exclusion application (granted at once: it only narrows rights) or the authority -> excluded;
    a move application at DPC B for a machine at DPC A -> excluded at A (A's feed says `moved`, naming B) and
    submitted at B, until the authority includes it there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from registry import audit
from registry.contract.v1 import (
    AllowanceIn,
    AllowanceOut,
    ApplicationBatch,
    ApplicationIn,
    ApplicationKind,
    ApplicationOut,
    ApplicationReceipt,
    ApplicationStatus,
    FeedPage,
    RegistrationStatus,
    SightingBatch,
    SightingReceipt,
)
from registry.models import Dpc, Licensee, Subtype
from registry.national import feed, idempotency
from registry.national.models import Allowance, Application, Registration
from registry.service import RegistryService
from serverkit.db import SQLITE_BEGIN, SessionFactory
from serverkit.errors import Conflict, InvalidInput, NotFound
from serverkit.timeutil import Clock, system_clock, utc

log = logging.getLogger(__name__)
REGISTERED = (RegistrationStatus.INCLUDED.value, RegistrationStatus.SUSPENDED.value)


class NationalRegistry:
    """One registry for many DPCs. `fresh_for`: how long a sighting proves a machine is at a DPC (duplicates)."""

    def __init__(self, session_factory: SessionFactory, clock: Clock = system_clock, *,
                 fresh_for: timedelta = timedelta(minutes=15)) -> None:
        self._sessions = session_factory
        self._clock = clock
        self.fresh_for = fresh_for
        self.reference = RegistryService(session_factory, clock=clock, fresh_for=fresh_for)

    # ------------------------------------------------------------ plumbing

    def now(self) -> datetime:
        return utc(self._clock())

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction holding the audit head's lock (serialises audit and feed writers)."""
        with self._sessions() as session, session.begin():
            session.connection(execution_options={SQLITE_BEGIN: "IMMEDIATE"})
            audit.lock_head(session)
            yield session

    @contextmanager
    def unlocked(self) -> Iterator[Session]:
        """A write transaction that takes the audit head's lock only if it appends (sightings)."""
        with self._sessions() as session, session.begin():
            session.connection(execution_options={SQLITE_BEGIN: "IMMEDIATE"})
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    def dialect(self) -> str:
        with self._sessions() as session:
            return session.get_bind().dialect.name

    @staticmethod
    def dpc(session: Session, code: str) -> Dpc:
        row = session.execute(select(Dpc).where(col(Dpc.code) == code)).scalar_one_or_none()
        if row is None:
            raise NotFound("DPC", code)
        return row

    @staticmethod
    def licensee_by_bin(session: Session, bin_: str) -> Licensee | None:
        return session.execute(select(Licensee).where(col(Licensee.bin) == bin_)).scalar_one_or_none()

    @staticmethod
    def registration(session: Session, serial: str) -> Registration | None:
        return session.execute(select(Registration).where(col(Registration.serial) == serial)).scalar_one_or_none()

    def _replayable(self, endpoint: str, dpc: str, key: str, run: Any, model: type[BaseModel]) -> Any:
        """Run `run(session)` once per key; a repeat (or a concurrent twin) returns the stored first answer."""
        try:
            with self.transaction() as s:
                if (first := idempotency.stored(s, endpoint, dpc, key)) is not None:
                    return model.model_validate({**first, "replayed": True})
                answer = run(s)
                idempotency.remember(s, endpoint, dpc, key, answer.model_dump(mode="json"), self.now())
                return answer
        except IntegrityError:
            with self.reading() as s:
                if (first := idempotency.stored(s, endpoint, dpc, key)) is None:
                    raise
                return model.model_validate({**first, "replayed": True})

    def _change(self, s: Session, entity: str, row: Any, changes: dict[str, Any], actor: str, action: str) -> None:
        before = audit.snapshot(entity, row) if row.id is not None else None
        for name, value in changes.items():
            setattr(row, name, value)
        row.changed_at = self.now()
        audit.record_change(s, actor=actor, ts=row.changed_at, entity=entity, row=row, action=action, before=before)

    # ------------------------------------------------------------ applications (DPC side)

    def submit_applications(self, dpc_code: str, batch: ApplicationBatch, idempotency_key: str,
                            actor: str) -> ApplicationReceipt:
        def run(s: Session) -> ApplicationReceipt:
            dpc = self.dpc(s, dpc_code)
            items = []
            for index, app in enumerate(batch.applications):
                try:
                    items.append(self._apply(s, dpc, app, actor))
                except InvalidInput as exc:
                    raise InvalidInput(f"applications.{index}.{exc.field}", exc.reason) from exc
            return ApplicationReceipt(items=items)

        return self._replayable("applications", dpc_code, idempotency_key, run, ApplicationReceipt)

    def _owner(self, s: Session, dpc: Dpc, app: ApplicationIn) -> Licensee:
        owner = self.licensee_by_bin(s, app.owner_bin)
        if owner is None:
            raise InvalidInput("owner_bin", f"no licensee with BIN {app.owner_bin} in the registry")
        if owner.id != dpc.operator_id and owner.subtype != Subtype.II.value:
            raise InvalidInput("owner_bin", f"licensee {app.owner_bin} is subtype I and does not operate DPC "
                                            f"{dpc.code}: only the operator or a subtype-II tenant owns machines here")
        return owner

    def _apply(self, s: Session, dpc: Dpc, app: ApplicationIn, actor: str) -> ApplicationOut:
        reg = self.registration(s, app.serial)
        owner = self._owner(s, dpc, app)
        if app.kind == ApplicationKind.EXCLUSION:
            return self._exclusion(s, dpc, app, reg, owner, actor)
        if reg is not None and reg.status in REGISTERED and reg.dpc_id == dpc.id:
            raise InvalidInput("serial", f"{app.serial} is already {reg.status} at {dpc.code}")
        if reg is not None and reg.status == RegistrationStatus.SUBMITTED.value and reg.dpc_id == dpc.id:
            raise InvalidInput("serial", f"{app.serial} already has an application waiting at {dpc.code}")
        elsewhere = reg is not None and reg.status in REGISTERED and reg.dpc_id != dpc.id
        if app.kind == ApplicationKind.INCLUSION and elsewhere:
            raise InvalidInput("kind", f"{app.serial} is registered at another DPC: apply with kind 'move'")
        if app.kind == ApplicationKind.MOVE and not elsewhere:
            raise InvalidInput("kind", f"{app.serial} is not registered at another DPC: apply with kind 'inclusion'")
        now = self.now()
        row = self._application_row(s, dpc, app, owner, actor, ApplicationStatus.SUBMITTED.value)
        old_dpc = reg.dpc_id if reg is not None and elsewhere else None
        values: dict[str, Any] = {"mac": app.mac, "make": app.make, "model": app.model, "firmware": app.firmware,
                  "nominal_ths": app.nominal_ths, "rated_w": app.rated_w, "owner_id": owner.id, "dpc_id": dpc.id,
                  "placement": app.placement.model_dump(exclude_none=True) if app.placement else {},
                  "status": RegistrationStatus.SUBMITTED.value, "registry_number": None,
                  "reason": f"moved from another DPC, application {row.id}" if old_dpc else None,
                  "decided_at": None, "decided_by": None}
        if reg is None:
            reg = Registration(serial=app.serial, created_at=now, changed_at=now, **values)
            self._change(s, "registration", reg, {}, actor, "submitted")
        else:
            self._change(s, "registration", reg, values, actor, "moved" if old_dpc else "submitted")
        feed.emit_registration(s, reg, now, old_dpc_id=old_dpc)
        return self._out(row, dpc)

    def _exclusion(self, s: Session, dpc: Dpc, app: ApplicationIn, reg: Registration | None, owner: Licensee,
                   actor: str) -> ApplicationOut:
        if not app.reason:
            raise InvalidInput("reason", "an exclusion needs a reason (decommissioned, sold, exported...)")
        if reg is None or reg.dpc_id != dpc.id or reg.status not in (*REGISTERED, RegistrationStatus.SUBMITTED.value):
            raise InvalidInput("serial", f"{app.serial} is not registered at {dpc.code}")
        row = self._application_row(s, dpc, app, owner, actor, ApplicationStatus.EXCLUDED.value)
        row.decided_at, row.decided_by = self.now(), "registry:exclusion-granted-on-submission"
        self._change(s, "registration", reg, {"status": RegistrationStatus.EXCLUDED.value, "reason": app.reason,
                                              "decided_at": self.now(), "decided_by": actor}, actor, "excluded")
        feed.emit_registration(s, reg, self.now())
        return self._out(row, dpc)

    def _application_row(self, s: Session, dpc: Dpc, app: ApplicationIn, owner: Licensee, actor: str,
                         status: str) -> Application:
        now = self.now()
        details = app.model_dump(mode="json", exclude={"kind", "serial", "reason", "submitted_by", "submitted_at"},
                                 exclude_none=True)
        row = Application(kind=app.kind.value, serial=app.serial, dpc_id=dpc.id, owner_id=owner.id,  # type: ignore[arg-type]
                          details=details, reason=app.reason, submitted_by=f"{actor}/{app.submitted_by}"[:200],
                          submitted_at=utc(app.submitted_at), status=status, created_at=now, changed_at=now)
        if status != ApplicationStatus.SUBMITTED.value:
            row.decided_at, row.decided_by = now, actor
        self._change(s, "application", row, {}, actor, "submitted")
        return row

    @staticmethod
    def _out(row: Application, dpc: Dpc) -> ApplicationOut:
        assert row.id is not None and dpc.code is not None
        return ApplicationOut(id=row.id, kind=ApplicationKind(row.kind), serial=row.serial, dpc=dpc.code,
                              status=ApplicationStatus(row.status), reason=row.decision_reason or row.reason,
                              submitted_at=row.submitted_at, decided_at=row.decided_at, decided_by=row.decided_by)

    # ------------------------------------------------------------ the authority's decisions

    def decide(self, application_id: int, include: bool, reason: str | None, actor: str,
               registry_number: str | None = None) -> ApplicationOut:
        """Include (issuing the registry number: the one given, else KZ-HSC-<year>-<id>) or reject with a reason."""
        with self.transaction() as s:
            row = s.get(Application, application_id)
            if row is None:
                raise NotFound("application", application_id)
            if row.status != ApplicationStatus.SUBMITTED.value:
                raise Conflict(f"application {application_id} is {row.status}: only submitted ones are decided")
            if not include and not reason:
                raise InvalidInput("reason", "a rejection needs a reason")
            reg = self.registration(s, row.serial)
            if reg is None or reg.dpc_id != row.dpc_id or reg.status != RegistrationStatus.SUBMITTED.value:
                raise Conflict(f"{row.serial} is no longer waiting at this DPC (application superseded)")
            now = self.now()
            status = ApplicationStatus.INCLUDED if include else ApplicationStatus.REJECTED
            self._change(s, "application", row, {"status": status.value, "decided_at": now, "decided_by": actor,
                                                 "decision_reason": reason}, actor, status.value)
            changes: dict[str, Any] = {"status": RegistrationStatus.INCLUDED.value if include else
                                       RegistrationStatus.REJECTED.value, "reason": reason, "decided_at": now,
                                       "decided_by": actor}
            if include:
                changes["registry_number"] = self._number(s, reg, registry_number)
            self._change(s, "registration", reg, changes, actor, "included" if include else "rejected")
            feed.emit_registration(s, reg, now)
            dpc = s.get(Dpc, row.dpc_id)
            assert dpc is not None
            return self._out(row, dpc)

    def _number(self, s: Session, reg: Registration, wanted: str | None) -> str:
        if reg.registry_number and not wanted:
            return reg.registry_number
        number = wanted or f"KZ-HSC-{self.now().year}-{reg.id:08d}"
        clash = s.execute(select(col(Registration.id)).where(col(Registration.registry_number) == number,
                                                             col(Registration.id) != reg.id)).scalar()
        if clash is not None:
            raise InvalidInput("registry_number", f"{number} is already issued to another machine")
        return number

    STATUS_ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
        "suspend": ((RegistrationStatus.INCLUDED.value,), RegistrationStatus.SUSPENDED.value),
        "reinstate": ((RegistrationStatus.SUSPENDED.value,), RegistrationStatus.INCLUDED.value),
        "exclude": ((RegistrationStatus.INCLUDED.value, RegistrationStatus.SUSPENDED.value,
                     RegistrationStatus.SUBMITTED.value), RegistrationStatus.EXCLUDED.value),
    }

    def set_status(self, serial: str, action: str, reason: str, actor: str) -> Registration:
        """The authority suspends, reinstates or excludes a machine (always with a reason)."""
        if action not in self.STATUS_ACTIONS:
            raise InvalidInput("action", f"one of {', '.join(self.STATUS_ACTIONS)}")
        if not reason.strip():
            raise InvalidInput("reason", "give a reason")
        sources, target = self.STATUS_ACTIONS[action]
        with self.transaction() as s:
            reg = self.registration(s, serial)
            if reg is None:
                raise NotFound("registration", serial)
            if reg.status not in sources:
                raise Conflict(f"{serial} is {reg.status}: cannot {action}")
            self._change(s, "registration", reg, {"status": target, "reason": reason, "decided_at": self.now(),
                                                  "decided_by": actor}, actor, action)
            feed.emit_registration(s, reg, self.now())
            return reg

    # ------------------------------------------------------------ allowances

    def submit_allowance(self, dpc_code: str, data: AllowanceIn, idempotency_key: str, actor: str) -> AllowanceOut:
        if data.ends_at <= data.starts_at:
            raise InvalidInput("ends_at", "must be after starts_at")
        if data.ends_at - data.starts_at > timedelta(days=30):
            raise InvalidInput("ends_at", "a commissioning allowance lasts at most 30 days")

        def run(s: Session) -> AllowanceOut:
            dpc = self.dpc(s, dpc_code)
            reg = self.registration(s, data.serial)
            if reg is None or reg.dpc_id != dpc.id:
                raise InvalidInput("serial", f"{data.serial} has no application at {dpc_code}: apply for its "
                                             "inclusion first (the allowance is burn-in before the decision)")
            now = self.now()
            row = Allowance(serial=data.serial, dpc_id=dpc.id, starts_at=utc(data.starts_at), ends_at=utc(data.ends_at),
                            reason=data.reason, granted_by=f"{actor}/{data.granted_by}"[:200], created_at=now,
                            changed_at=now)
            self._change(s, "allowance", row, {}, actor, "granted")
            feed.emit_allowance(s, row, now)
            assert row.id is not None and dpc.code is not None
            return AllowanceOut(id=row.id, serial=row.serial, dpc=dpc.code, starts_at=row.starts_at,
                                ends_at=row.ends_at, reason=row.reason, granted_by=row.granted_by)

        return self._replayable("allowances", dpc_code, idempotency_key, run, AllowanceOut)

    # ------------------------------------------------------------ sightings and the feed

    def submit_sightings(self, dpc_code: str, batch: SightingBatch, idempotency_key: str,
                         actor: str) -> SightingReceipt:
        from registry.national.sightings import record

        def run(s: Session) -> SightingReceipt:
            return record(self, s, self.dpc(s, dpc_code), batch, actor)

        try:
            with self.unlocked() as s:  # a repeat returns before anything takes the head lock
                if (first := idempotency.stored(s, "sightings", dpc_code, idempotency_key)) is not None:
                    return SightingReceipt.model_validate({**first, "replayed": True})
                answer = run(s)
                idempotency.remember(s, "sightings", dpc_code, idempotency_key, answer.model_dump(mode="json"),
                                     self.now())
                return answer
        except IntegrityError:
            with self.reading() as s:
                if (first := idempotency.stored(s, "sightings", dpc_code, idempotency_key)) is None:
                    raise
                return SightingReceipt.model_validate({**first, "replayed": True})

    def feed(self, dpc_code: str, after: int, limit: int) -> FeedPage:
        with self.reading() as s:
            dpc = self.dpc(s, dpc_code)
            assert dpc.id is not None
            return feed.page(s, dpc.id, after, limit)

    # ------------------------------------------------------------ reference rows kept by the authority

    def create_reference(self, entity: str, data: BaseModel, actor: str) -> Any:
        """A licensee, DPC or pool, audited like any change, with its feed item (pools go to every DPC)."""
        with self.transaction() as s:
            row = self.reference._create(s, entity, self.reference._values(data, False), actor)
            self._emit_reference(s, entity, row)
            return row

    def update_reference(self, entity: str, row_id: int, patch: BaseModel, actor: str) -> Any:
        with self.transaction() as s:
            row = self.reference._get(s, entity, row_id)
            changes = self.reference._values(patch, True)
            if hasattr(row, "valid_to"):
                self.reference._checked_dates(row, changes)
            if self.reference._update(s, entity, row, changes, actor):
                self._emit_reference(s, entity, row)
            return row

    def _emit_reference(self, s: Session, entity: str, row: Any) -> None:
        if entity == "licensee":
            feed.emit_licence(s, row, self.now())
        elif entity == "pool":
            feed.emit_pool(s, row, self.now())
        elif entity == "dpc" and row.operator_id is not None:
            operator = s.get(Licensee, row.operator_id)
            if operator is not None:
                feed.append(s, [row.id], self.now(), feed.licence_state(operator))
            # pools are feed items for every DPC (dpc_id NULL): a new DPC reading from 0 gets them all

    def prune_idempotency_keys(self, older_than: timedelta) -> int:
        """Forget applied Idempotency-Keys older than `older_than` (far longer than any outbox retries)."""
        return self.reference.prune_idempotency_keys(older_than)
