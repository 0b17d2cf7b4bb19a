"""The registry service: the one place that changes registry rows, each change with its audit event.

Every public method runs in one transaction: it either applies completely or raises and writes nothing.
The controller calls `record_sightings` for every telemetry batch and `check_compliance` periodically, and asks
`noncompliant_device_ids()` which machines the quota engine must give no power.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col

from kuat.catalog import lookup
from kuat.wire.v1 import MinerSample
from registry import audit
from registry.compliance import (
    HSC_KINDS,
    HSC_SIGHTING_KINDS,
    HscFacts,
    RuleContext,
    dpc_over_capacity,
    hsc_violations,
)
from registry.models import (
    AccreditedPool,
    AuditEvent,
    Dpc,
    Hsc,
    HscStatus,
    IdempotencyRecord,
    Licensee,
    Subtype,
    Violation,
    ViolationKind,
    ViolationStatus,
)
from registry.schemas import (
    ApproveIn,
    BulkApproveItem,
    ComplianceResult,
    DpcIn,
    HscIn,
    HscPatch,
    LicenseeIn,
    LicenseePatch,
    PoolIn,
    SightingResult,
)
from serverkit.db import SQLITE_BEGIN, SessionFactory
from serverkit.errors import InvalidInput, NotFound
from serverkit.timeutil import Clock, system_clock, utc

log = logging.getLogger(__name__)
Row = TypeVar("Row", bound=SQLModel)

ENTITY_MODELS: dict[str, type[SQLModel]] = {"licensee": Licensee, "dpc": Dpc, "pool": AccreditedPool, "hsc": Hsc}
UNIQUE_FIELDS: dict[str, tuple[str, ...]] = {
    "licensee": ("bin", "licence_number"),
    "dpc": ("name",),
    "pool": ("accreditation_number",),
    "hsc": ("serial", "registry_number"),
}
REFERENCES: dict[str, dict[str, tuple[str, type[SQLModel]]]] = {
    "dpc": {"operator_id": ("licensee", Licensee)},
    "hsc": {"owner_id": ("licensee", Licensee), "dpc_id": ("DPC", Dpc)},
}
STATUS_MOVES: dict[str, set[str]] = {
    HscStatus.PENDING.value: {HscStatus.REGISTERED.value, HscStatus.DECOMMISSIONED.value},
    HscStatus.REGISTERED.value: {HscStatus.SUSPENDED.value, HscStatus.DECOMMISSIONED.value},
    HscStatus.SUSPENDED.value: {HscStatus.REGISTERED.value, HscStatus.DECOMMISSIONED.value},
    HscStatus.DECOMMISSIONED.value: set(),
}
DELETE_BLOCKERS: dict[str, tuple[tuple[Any, str], ...]] = {
    "licensee": ((Dpc.operator_id, "a DPC"), (Hsc.owner_id, "an HSC")),
    "dpc": ((Hsc.dpc_id, "an HSC"),),
}
LOCATION_FIELDS = ("site", "gateway", "device_id", "ip", "pdu", "pdu_outlet")
IDENTITY_FIELDS = ("mac", "make", "model")


@dataclass
class HscFilter:
    owner_id: int | None = None
    owner_bin: str | None = None
    dpc_id: int | None = None
    zone: str | None = None
    status: str | None = None
    model: str | None = None
    changed_since: datetime | None = None


def _no_nulls(row: Any, changes: Mapping[str, Any]) -> None:
    """A PATCH may leave a field out, not set a required one to null (that was a NOT NULL violation: a 500)."""
    columns = type(row).__table__.c
    for name, value in changes.items():
        if value is None and name in columns and not columns[name].nullable:
            raise InvalidInput(name, "may not be null (leave it out to keep the current value)")


def hsc_conditions(flt: HscFilter) -> list[Any]:
    """WHERE clauses for a filter (shared by the paged list and the export)."""
    conditions: list[Any] = []
    if flt.owner_id is not None:
        conditions.append(Hsc.owner_id == flt.owner_id)
    if flt.owner_bin is not None:
        # correlate_except: the export joins Licensee itself; auto-correlation would leave this subquery no FROM
        owner = (select(col(Licensee.id)).where(col(Licensee.bin) == flt.owner_bin).correlate_except(Licensee)
                 .scalar_subquery())
        conditions.append(Hsc.owner_id == owner)
    if flt.dpc_id is not None:
        conditions.append(Hsc.dpc_id == flt.dpc_id)
    if flt.zone is not None:  # EXISTS, not IN: the planner then walks (changed_at, id) and stops at a page
        conditions.append(select(col(Dpc.id)).where(col(Dpc.id) == col(Hsc.dpc_id), col(Dpc.zone) == flt.zone)
                          .correlate_except(Dpc).exists())
    if flt.status is not None:
        conditions.append(Hsc.status == flt.status)
    if flt.model is not None:
        conditions.append(Hsc.model == flt.model)
    if flt.changed_since is not None:
        conditions.append(col(Hsc.changed_at) >= utc(flt.changed_since))
    return conditions


def encode_cursor(changed_at: datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{utc(changed_at).isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        stamp, row_id = text.rsplit("|", 1)
        return utc(datetime.fromisoformat(stamp)), int(row_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor", "not a cursor this API handed out") from exc


class RegistryService:
    def __init__(self, session_factory: SessionFactory, clock: Clock = system_clock, *,
                 missing_after: timedelta = timedelta(days=3), fresh_for: timedelta = timedelta(minutes=15)) -> None:
        self._sessions = session_factory
        self._clock = clock
        self.missing_after = missing_after
        self.fresh_for = fresh_for

    # ------------------------------------------------------------ plumbing

    def now(self) -> datetime:
        return utc(self._clock())

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One session, one write transaction: committed when the block ends, rolled back on any exception.

        Writers are serialised up front (SQLite: BEGIN IMMEDIATE; PostgreSQL: the audit head's row lock), so two
        writers never deadlock or fork the audit chain."""
        with self._sessions() as session, session.begin():
            session.connection(execution_options={SQLITE_BEGIN: "IMMEDIATE"})
            audit.lock_head(session)
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    def _get(self, session: Session, entity: str, row_id: int) -> Any:
        row = session.get(ENTITY_MODELS[entity], row_id)
        if row is None:
            raise NotFound(entity, row_id)
        return row

    def _check_unique(self, session: Session, entity: str, values: Mapping[str, Any], own_id: int | None) -> None:
        model = ENTITY_MODELS[entity]
        for name in UNIQUE_FIELDS[entity]:
            value = values.get(name)
            if value is None:
                continue
            clash = session.execute(select(model.id).where(getattr(model, name) == value)).scalar()  # type: ignore[attr-defined]
            if clash is not None and clash != own_id:
                raise InvalidInput(name, f"duplicate: {entity} {clash} already has {name} {value!r}")

    def _check_references(self, session: Session, entity: str, values: Mapping[str, Any]) -> None:
        for name, (label, model) in REFERENCES.get(entity, {}).items():
            ref = values.get(name)
            if ref is not None and session.get(model, ref) is None:
                raise InvalidInput(name, f"unknown {label} {ref}")
        if entity == "dpc" and values.get("operator_id") is not None:
            operator = session.get(Licensee, values["operator_id"])
            if operator is not None and operator.subtype != Subtype.I.value:
                raise InvalidInput("operator_id", f"licensee {operator.id} is subtype II (a tenant): it cannot "
                                                  "operate a DPC")

    def _create(self, session: Session, entity: str, values: dict[str, Any], actor: str,
                action: str = "created") -> Any:
        if entity != "hsc":
            session.info.pop("rule_context", None)
        self._check_unique(session, entity, values, None)
        self._check_references(session, entity, values)
        now = self.now()
        row = ENTITY_MODELS[entity](**values, created_at=now, changed_at=now) if entity != "hsc" else \
            Hsc(**values, changed_at=now)
        audit.record_change(session, actor=actor, ts=now, entity=entity, row=row, action=action, before=None)
        return row

    def _update(self, session: Session, entity: str, row: Any, changes: Mapping[str, Any], actor: str,
                action: str = "updated") -> bool:
        """Apply the changes that differ; record one audit event. False when nothing changed."""
        changes = {k: v for k, v in changes.items() if getattr(row, k) != v}
        if not changes:
            return False
        self._check_unique(session, entity, changes, row.id)
        self._check_references(session, entity, changes)
        if entity != "hsc":
            session.info.pop("rule_context", None)
        before = audit.snapshot(entity, row)
        for name, value in changes.items():
            setattr(row, name, value)
        row.changed_at = self.now()
        audit.record_change(session, actor=actor, ts=row.changed_at, entity=entity, row=row, action=action,
                            before=before)
        return True

    @staticmethod
    def _values(model: BaseModel, exclude_unset: bool) -> dict[str, Any]:
        return {k: (v.value if hasattr(v, "value") else v)
                for k, v in model.model_dump(exclude_unset=exclude_unset).items()}

    def _checked_dates(self, row: Any, changes: Mapping[str, Any]) -> None:
        valid_from = changes.get("valid_from", row.valid_from)
        valid_to = changes.get("valid_to", row.valid_to)
        if valid_to <= valid_from:
            raise InvalidInput("valid_to", "must be after valid_from (dates out of order)")

    # ------------------------------------------------------------ licensees, DPCs, pools

    def create(self, entity: str, data: BaseModel, actor: str) -> Any:
        """Create a licensee, DPC or pool from its validated API model."""
        with self.transaction() as s:
            return self._create(s, entity, self._values(data, False), actor)

    def update(self, entity: str, row_id: int, patch: BaseModel, actor: str) -> Any:
        with self.transaction() as s:
            row = self._get(s, entity, row_id)
            changes = self._values(patch, True)
            _no_nulls(row, changes)
            if hasattr(row, "valid_to"):
                self._checked_dates(row, changes)
            self._update(s, entity, row, changes, actor)
            return row

    def get(self, entity: str, row_id: int) -> Any:
        with self.reading() as s:
            return self._get(s, entity, row_id)

    def list_rows(self, entity: str, limit: int = 1000, offset: int = 0) -> list[Any]:
        model = ENTITY_MODELS[entity]
        with self.reading() as s:
            return list(s.execute(select(model).order_by(model.id).limit(limit).offset(offset)).scalars())  # type: ignore[attr-defined]

    def delete(self, entity: str, row_id: int, actor: str) -> None:
        """Delete a licensee, DPC or pool that nothing references (the deletion is audited)."""
        with self.transaction() as s:
            row = self._get(s, entity, row_id)
            for column, label in DELETE_BLOCKERS.get(entity, ()):
                if s.execute(select(func.count()).where(column == row_id)).scalar():
                    raise InvalidInput("id", f"{entity} {row_id} is still referenced by {label}")
            before = audit.snapshot(entity, row)
            s.delete(row)
            s.flush()
            audit.append(s, actor=actor, ts=self.now(), entity=entity, entity_id=row_id, action="deleted",
                         before=before, after=None)

    def create_licensee(self, data: LicenseeIn, actor: str) -> Licensee:
        row: Licensee = self.create("licensee", data, actor)
        return row

    def update_licensee(self, row_id: int, patch: LicenseePatch, actor: str) -> Licensee:
        row: Licensee = self.update("licensee", row_id, patch, actor)
        return row

    def delete_licensee(self, row_id: int, actor: str) -> None:
        self.delete("licensee", row_id, actor)

    def create_dpc(self, data: DpcIn, actor: str) -> Dpc:
        row: Dpc = self.create("dpc", data, actor)
        return row

    def create_pool(self, data: PoolIn, actor: str) -> AccreditedPool:
        row: AccreditedPool = self.create("pool", data, actor)
        return row

    # ------------------------------------------------------------ HSCs

    def _hsc(self, session: Session, ref: int | str) -> Hsc:
        """An HSC by id (int, or digits) or by serial."""
        row = None
        if isinstance(ref, int) or ref.isdigit():
            row = session.get(Hsc, int(ref))
        if row is None and isinstance(ref, str):
            row = session.execute(select(Hsc).where(Hsc.serial == ref)).scalar_one_or_none()  # type: ignore[arg-type]
        if row is None:
            raise NotFound("hsc", ref)
        return row

    def create_hsc(self, data: HscIn, actor: str) -> Hsc:
        """A machine entered by hand (not yet seen): pending unless the operator registers it at once."""
        with self.transaction() as s:
            return self.create_hsc_in(s, data, actor)

    def create_hsc_in(self, session: Session, data: HscIn, actor: str) -> Hsc:
        values = self._values(data, False)
        status = values.pop("status") or HscStatus.PENDING.value
        row: Hsc = self._create(session, "hsc", {**values, "status": HscStatus.PENDING.value}, actor)
        if status != HscStatus.PENDING.value:
            self.move_status_in(session, row, status, actor)
        return row

    def update_hsc(self, ref: int | str, patch: HscPatch, actor: str) -> Hsc:
        with self.transaction() as s:
            row = self._hsc(s, ref)
            self.update_hsc_in(s, row, patch, actor)
            return row

    def update_hsc_in(self, session: Session, row: Hsc, patch: HscPatch, actor: str) -> bool:
        """Apply a patch (a status change goes through the allowed moves); True when anything changed."""
        changes = self._values(patch, True)
        status = changes.pop("status", None)
        _no_nulls(row, changes)
        changed = self._update(session, "hsc", row, changes, actor)
        if status is not None and status != row.status:
            self.move_status_in(session, row, status, actor)
            changed = True
        return changed

    def decommission_hsc(self, ref: int | str, actor: str) -> Hsc:
        """DELETE of an HSC: the registry never forgets a machine, it is decommissioned (excluded)."""
        with self.transaction() as s:
            row = self._hsc(s, ref)
            if row.status != HscStatus.DECOMMISSIONED.value:
                self.move_status_in(s, row, HscStatus.DECOMMISSIONED.value, actor)
            return row

    def move_status_in(self, session: Session, row: Hsc, status: str, actor: str) -> None:
        if status not in STATUS_MOVES[row.status]:
            raise InvalidInput("status", f"cannot go from {row.status} to {status}")
        changes: dict[str, Any] = {"status": status}
        if status == HscStatus.REGISTERED.value:
            self._require_registrable(session, row)
            changes["registered_at"] = row.registered_at or self.now()
            if row.registry_number is None:
                changes["registry_number"] = f"KZ-HSC-{row.id:08d}"
        if status == HscStatus.DECOMMISSIONED.value:
            changes["decommissioned_at"] = self.now()
        self._update(session, "hsc", row, changes, actor, action=status)
        self._sync_hsc_violations(session, row, HSC_SIGHTING_KINDS, actor=actor)

    @staticmethod
    def _require_registrable(session: Session, row: Hsc) -> None:
        if row.owner_id is None:
            raise InvalidInput("owner_id", "a registered machine needs an owner licensee")
        if row.dpc_id is None:
            raise InvalidInput("dpc_id", "a registered machine needs a DPC")

    def get_hsc(self, ref: int | str) -> Hsc:
        with self.reading() as s:
            return self._hsc(s, ref)

    def hsc_history(self, ref: int | str) -> tuple[Hsc, list[AuditEvent]]:
        with self.reading() as s:
            row = self._hsc(s, ref)
            stmt = select(AuditEvent).where(AuditEvent.entity == "hsc", AuditEvent.entity_id == str(row.id))  # type: ignore[arg-type]
            return row, list(s.execute(stmt.order_by(AuditEvent.seq)).scalars())  # type: ignore[arg-type]

    def list_hscs(self, flt: HscFilter, cursor: str | None = None, limit: int = 100) -> tuple[list[Hsc], str | None]:
        """One page ordered by (changed_at, id); the cursor continues after the last row of the previous page."""
        stmt = select(Hsc)
        conditions = hsc_conditions(flt)
        if cursor:
            conditions.append(tuple_(Hsc.changed_at, Hsc.id) > tuple_(*decode_cursor(cursor)))
        stmt = stmt.where(*conditions).order_by(col(Hsc.changed_at), col(Hsc.id)).limit(limit + 1)
        with self.reading() as s:
            rows = list(s.execute(stmt).scalars())
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].changed_at, rows[-1].id)

    # ------------------------------------------------------------ approval

    def approve(self, ref: int | str, data: ApproveIn, actor: str) -> Hsc:
        """Pending -> registered: assign owner, DPC and position; the registry number defaults to KZ-HSC-<id>."""
        with self.transaction() as s:
            row = self._hsc(s, ref)
            self.approve_in(s, row, data, actor)
            return row

    def approve_in(self, session: Session, row: Hsc, data: ApproveIn, actor: str) -> None:
        if row.status != HscStatus.PENDING.value:
            raise InvalidInput("status", f"hsc {row.serial} is {row.status}, only pending machines are approved")
        self._update(session, "hsc", row, self._values(data, True), actor, action="assigned")
        self.move_status_in(session, row, HscStatus.REGISTERED.value, actor)

    def bulk_approve(self, items: Sequence[BulkApproveItem], actor: str) -> list[Hsc]:
        """All or nothing: the first bad item raises (naming items[i].field) and nothing is approved."""
        with self.transaction() as s:
            done: list[Hsc] = []
            for index, item in enumerate(items):
                try:
                    row = self._hsc(s, item.serial)
                    self.approve_in(s, row, ApproveIn(**item.model_dump(exclude={"serial"}, exclude_unset=True)), actor)
                    done.append(row)
                except InvalidInput as exc:
                    raise InvalidInput(f"items[{index}].{exc.field}", exc.reason) from exc
                except NotFound as exc:
                    raise InvalidInput(f"items[{index}].serial", f"unknown serial {item.serial!r}") from exc
            return done

    # ------------------------------------------------------------ sightings (registration from telemetry)

    def record_sightings(self, site: str, gateway: str, samples: Sequence[MinerSample], at: datetime,
                         idempotency_key: str | None = None, actor: str | None = None) -> SightingResult:
        """First sightings become pending registrations; moves, firmware, pool and identity changes update the
        record with history; bad pools and unregistered mining open violations. With an idempotency key a repeat
        returns the first result and changes nothing. `actor` is the key that submitted them (the HTTP route's);
        the audit chain names it with the site and gateway (in-process telemetry has no key: site and gateway)."""
        at = utc(at)
        try:
            with self.transaction() as s:
                if idempotency_key and (stored := s.get(IdempotencyRecord, idempotency_key)) is not None:
                    return SightingResult.model_validate({**stored.response, "replayed": True})
                result = self._record(s, site, gateway, samples, at, actor)
                if idempotency_key:
                    s.add(IdempotencyRecord(key=idempotency_key, endpoint="sightings", status_code=200,
                                            response=result.model_dump(mode="json"), created_at=self.now()))
                return result
        except IntegrityError:
            if not idempotency_key:
                raise
            with self.reading() as s:  # the same key landed concurrently: hand back its stored result
                stored = s.get(IdempotencyRecord, idempotency_key)
                if stored is None:
                    raise
                return SightingResult.model_validate({**stored.response, "replayed": True})

    def _record(self, session: Session, site: str, gateway: str, samples: Sequence[MinerSample],
                at: datetime, key_actor: str | None) -> SightingResult:
        result = SightingResult()
        actor = f"telemetry:{site}/{gateway}"
        actor = (actor if key_actor is None else f"{key_actor} via {actor}")[:200]  # the audit column's width
        serials = {s.serial.strip() for s in samples if s.serial and s.serial.strip()}
        known = {h.serial: h for h in session.execute(select(Hsc).where(col(Hsc.serial).in_(serials))).scalars()}
        ctx = self._rule_context(session, at)
        open_rows = {(v.kind, v.subject, v.subject_id): v for v in session.execute(select(Violation).where(
            col(Violation.subject) == "hsc", col(Violation.status) == ViolationStatus.OPEN.value,
            col(Violation.subject_id).in_([h.id for h in known.values()]))).scalars()}
        for sample in samples:
            serial = (sample.serial or "").strip()
            if not serial:
                result.skipped_no_serial += 1
                continue
            result.seen += 1
            observed = self._observed(site, gateway, sample)
            row = known.get(serial)
            if row is None:
                row = self._create(session, "hsc", {"serial": serial, **observed, **self._catalog_figures(sample),
                                                    "first_seen_at": at}, actor, action="first_seen")
                known[serial] = row
                result.new_pending.append(serial)
                log.info("new machine %s (%s %s) seen on %s/%s: pending registration", serial, sample.make,
                         sample.model, site, gateway)
            elif sample.available:
                self._apply_changes(session, row, observed, actor, result)
            if sample.available:
                row.last_seen_at, row.last_state, row.last_power_w = at, sample.state.value, sample.power_w
                session.add(row)
            for kind in self._sync_hsc_violations(session, row, HSC_SIGHTING_KINDS, at, ctx, open_rows, actor):
                result.violations_opened.append({"kind": kind.value, "serial": serial})
        return result

    @staticmethod
    def _observed(site: str, gateway: str, sample: MinerSample) -> dict[str, Any]:
        pools = sorted({p.url.strip() for p in sample.pools if p.url.strip()})
        return {
            "site": site, "gateway": gateway, "device_id": sample.device_id, "ip": sample.ip,
            "pdu": sample.outlet.pdu if sample.outlet else None,
            "pdu_outlet": sample.outlet.outlet if sample.outlet else None,
            "mac": sample.mac.lower() if sample.mac else None, "make": sample.make, "model": sample.model,
            "firmware": sample.firmware, "pools": pools,
        }

    @staticmethod
    def _catalog_figures(sample: MinerSample) -> dict[str, Any]:
        spec = lookup(sample.model)
        return {"nominal_ths": sample.nominal_ths or (spec.nominal_ths if spec else None),
                "rated_w": float(spec.nominal_w) if spec else None}

    def _apply_changes(self, session: Session, row: Hsc, observed: dict[str, Any], actor: str,
                       result: SightingResult) -> None:
        groups: list[tuple[str, tuple[str, ...], list[str]]] = [
            ("moved", LOCATION_FIELDS, result.moved),
            ("firmware_changed", ("firmware",), result.firmware_changed),
            ("pools_changed", ("pools",), result.pools_changed),
            ("identity_changed", IDENTITY_FIELDS, result.identity_changed),
        ]
        for action, fields, bucket in groups:
            changes = {f: observed[f] for f in fields if observed[f] is not None and observed[f] != getattr(row, f)}
            if action == "pools_changed" and not observed["pools"]:
                changes = {}  # a firmware that listed no pools this time tells nothing about them
            if self._update(session, "hsc", row, changes, actor, action=action):
                bucket.append(row.serial)
                log.info("machine %s %s: %s", row.serial, action, changes)
        if row.missing_since is not None:
            self._update(session, "hsc", row, {"missing_since": None}, actor, action="reappeared")
            result.reappeared.append(row.serial)

    # ------------------------------------------------------------ compliance

    def _rule_context(self, session: Session, now: datetime) -> RuleContext:
        """Pools and licensees for the rules, loaded once per transaction (and again after one of them changes)."""
        cached = session.info.get("rule_context")
        if isinstance(cached, RuleContext) and cached.now == now:
            return cached
        pools = list(session.execute(select(AccreditedPool)).scalars())
        licensees = list(session.execute(select(Licensee)).scalars())
        ctx = RuleContext.build(now, pools, licensees, self.fresh_for, self.missing_after)
        session.info["rule_context"] = ctx
        return ctx

    @staticmethod
    def _facts(row: Hsc) -> HscFacts:
        return HscFacts(row.status, row.owner_id, list(row.pools), row.last_seen_at, row.last_state)

    def _sync_hsc_violations(self, session: Session, row: Hsc, kinds: tuple[ViolationKind, ...],
                             now: datetime | None = None, ctx: RuleContext | None = None,
                             open_rows: dict[tuple[str, str, int], Violation] | None = None,
                             actor: str | None = None) -> list[ViolationKind]:
        """Open, refresh or resolve this machine's violations of `kinds`; return the kinds newly opened (naming
        `actor`, the write or check that found them, in their evidence as `opened_by`)."""
        now = now or self.now()
        ctx = ctx or self._rule_context(session, now)
        found = hsc_violations(self._facts(row), ctx, kinds)
        if open_rows is None:
            stmt = select(Violation).where(col(Violation.subject) == "hsc", col(Violation.subject_id) == row.id,
                                           col(Violation.status) == ViolationStatus.OPEN.value)
            open_rows = {(v.kind, v.subject, v.subject_id): v for v in session.execute(stmt).scalars()}
        opened: list[ViolationKind] = []
        for kind in kinds:
            existing = open_rows.get((kind.value, "hsc", row.id))  # type: ignore[arg-type]
            evidence = found.get(kind)
            created = self._sync_one(session, existing, kind, "hsc", row.id, evidence, now, row, actor)  # type: ignore[arg-type]
            if evidence is None:
                open_rows.pop((kind.value, "hsc", row.id), None)  # type: ignore[arg-type]
            elif created is not None:
                open_rows[(kind.value, "hsc", row.id)] = created  # type: ignore[index]
                opened.append(kind)
        return opened

    @staticmethod
    def _sync_one(session: Session, existing: Violation | None, kind: ViolationKind, subject: str, subject_id: int,
                  evidence: dict[str, Any] | None, now: datetime, hsc: Hsc | None = None,
                  actor: str | None = None) -> Violation | None:
        """Apply one rule outcome to its violation row; returns the violation when one was opened. The actor that
        opened it stays in its evidence (`opened_by`) through every refresh."""
        if evidence is None:
            if existing is not None:
                existing.status, existing.resolved_at, existing.last_seen_at = ViolationStatus.RESOLVED.value, now, now
                session.add(existing)
                log.info("violation %s resolved: %s %s", kind.value, subject, subject_id)
            return None
        if existing is not None:
            kept = {k: v for k, v in existing.evidence.items() if k == "opened_by"}
            existing.last_seen_at, existing.evidence = now, {**evidence, **kept}
            session.add(existing)
            return None
        evidence = {**evidence, "opened_by": actor} if actor else evidence
        violation = Violation(kind=kind.value, subject=subject, subject_id=subject_id, first_seen_at=now,
                              last_seen_at=now, evidence=evidence, serial=hsc.serial if hsc else None,
                              device_id=hsc.device_id if hsc else None)
        session.add(violation)
        log.warning("violation %s opened: %s %s %s", kind.value, subject, subject_id, evidence)
        return violation

    def check_compliance(self, now: datetime | None = None, dpc_power_w: Mapping[str, float] | None = None,
                         actor: str = "compliance") -> ComplianceResult:
        """Evaluate every rule over the whole registry. `dpc_power_w` maps a DPC name, or a site name (the site's
        machines all in one DPC), to measured W; DPCs it does not cover are summed from their machines' last
        reported power (fresh sightings only). `actor`: the key that asked (the timer's checks are "compliance")."""
        now = utc(now) if now else self.now()
        with self.transaction() as s:
            ctx = self._rule_context(s, now)
            open_rows = {(v.kind, v.subject, v.subject_id): v for v in s.execute(
                select(Violation).where(Violation.status == ViolationStatus.OPEN.value)).scalars()}  # type: ignore[arg-type]
            before_open = len(open_rows)
            opened = checked = 0
            for row in s.execute(select(Hsc).execution_options(yield_per=2000)).scalars():
                checked += 1
                if row.missing_since is None and ViolationKind.MISSING in hsc_violations(
                        self._facts(row), ctx, (ViolationKind.MISSING,)):
                    self._update(s, "hsc", row, {"missing_since": row.last_seen_at or now}, actor,
                                 action="disappeared")
                opened += len(self._sync_hsc_violations(s, row, HSC_KINDS, now, ctx, open_rows, actor))
            opened += self._check_dpcs(s, now, dpc_power_w or {}, open_rows, actor)
            s.flush()
            counts: dict[str, int] = {kind: n for kind, n in s.execute(
                select(col(Violation.kind), func.count()).where(col(Violation.status) == ViolationStatus.OPEN.value)
                .group_by(col(Violation.kind))).all()}
        total_open = sum(counts.values())
        return ComplianceResult(checked_at=now, hscs_checked=checked, opened=opened,
                                resolved=before_open + opened - total_open, open_by_kind=counts)

    def _measured_by_dpc(self, session: Session, measured: Mapping[str, float]) -> dict[int, float]:
        """Measured power per DPC id, from keys naming a DPC, or a site whose machines all sit in one DPC."""
        dpcs = {d.name: d.id for d in session.execute(select(Dpc)).scalars() if d.id is not None}
        site_dpcs: dict[str, set[int]] = {}
        for site, dpc_id in session.execute(select(col(Hsc.site), col(Hsc.dpc_id)).distinct().where(
                col(Hsc.site).is_not(None), col(Hsc.dpc_id).is_not(None))).all():
            site_dpcs.setdefault(site, set()).add(dpc_id)
        by_dpc: dict[int, float] = {}
        for key, watts in measured.items():
            targets = {dpcs[key]} if key in dpcs else site_dpcs.get(key, set())
            if len(targets) == 1:
                (dpc_id,) = targets
                by_dpc[dpc_id] = by_dpc.get(dpc_id, 0.0) + float(watts)
            elif len(targets) > 1:
                log.warning("measured power of site %s not attributed: its machines sit in %d DPCs", key,
                            len(targets))
        return by_dpc

    def _check_dpcs(self, session: Session, now: datetime, measured: Mapping[str, float],
                    open_rows: dict[tuple[str, str, int], Violation], actor: str) -> int:
        fresh_since = now - self.fresh_for
        summed: dict[int, float] = {dpc_id: float(w) for dpc_id, w in session.execute(
            select(col(Hsc.dpc_id), func.coalesce(func.sum(col(Hsc.last_power_w)), 0.0))
            .where(col(Hsc.dpc_id).is_not(None), col(Hsc.last_seen_at) >= fresh_since)
            .group_by(col(Hsc.dpc_id))).all()}
        by_dpc = self._measured_by_dpc(session, measured)
        opened = 0
        for dpc in session.execute(select(Dpc)).scalars():
            assert dpc.id is not None
            power = by_dpc.get(dpc.id, summed.get(dpc.id, 0.0))
            evidence = dpc_over_capacity(power, dpc.capacity_mw)
            if evidence is not None:
                evidence["source"] = "measured" if dpc.id in by_dpc else "sum of machines' reported power"
            existing = open_rows.get((ViolationKind.DPC_CAPACITY.value, "dpc", dpc.id))
            opened += self._sync_one(session, existing, ViolationKind.DPC_CAPACITY, "dpc", dpc.id, evidence,
                                     now, actor=actor) is not None
        return opened

    def violations(self, status: str | None = ViolationStatus.OPEN.value, kind: str | None = None,
                   limit: int = 1000, offset: int = 0) -> list[Violation]:
        stmt = select(Violation)
        if status:
            stmt = stmt.where(Violation.status == status)  # type: ignore[arg-type]
        if kind:
            stmt = stmt.where(Violation.kind == kind)  # type: ignore[arg-type]
        with self.reading() as s:
            return list(s.execute(stmt.order_by(Violation.id).limit(limit).offset(offset)).scalars())  # type: ignore[arg-type]

    # Kinds that, by policy, take a machine's power away (the quota engine zeroes it). A DPC over capacity is the
    # quota engine's own business (it caps the site); a missing machine draws nothing anyway.
    ZERO_POWER_KINDS = (ViolationKind.UNREGISTERED, ViolationKind.UNACCREDITED_POOL, ViolationKind.LICENCE)

    def _noncompliant(self, column: Any) -> set[str]:
        stmt = select(column).where(col(Violation.subject) == "hsc",
                                    col(Violation.status) == ViolationStatus.OPEN.value,
                                    col(Violation.kind).in_([k.value for k in self.ZERO_POWER_KINDS]),
                                    column.is_not(None)).distinct()
        with self.reading() as s:
            return set(s.execute(stmt).scalars())

    def noncompliant_device_ids(self) -> set[str]:
        """Agent device ids (MAC or ip-...) of machines that must get no power."""
        return self._noncompliant(Violation.device_id)

    def noncompliant_serials(self) -> set[str]:
        return self._noncompliant(Violation.serial)

    def prune_idempotency_keys(self, older_than: timedelta) -> int:
        """Forget applied Idempotency-Keys older than `older_than` (far longer than any outbox retries)."""
        cutoff = self.now() - older_than
        with self.transaction() as s:
            result = s.execute(delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < cutoff))
            return int(getattr(result, "rowcount", 0) or 0)

    # ------------------------------------------------------------ audit

    def verify_audit(self) -> audit.VerifyReport:
        with self.reading() as s:
            return audit.verify(s)
