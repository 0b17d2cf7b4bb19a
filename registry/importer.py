"""Bulk registration from CSV, with a dry-run report.

Columns (header row, any order): ``serial`` (required), ``owner_bin`` and ``dpc`` (DPC name) to register a
machine; optional ``registry_number``, ``hall``, ``rack``, ``slot``, ``make``, ``model``, ``mac``, ``firmware``,
``nominal_ths``, ``rated_w``. Per row:

- serial pending (seen by telemetry)      -> approve: assign owner/DPC/position, registered;
- serial unknown                          -> create: entered by hand and registered at once;
- serial already registered               -> update the given fields (or unchanged).

The whole file runs in one transaction. A dry run, or any row with an error, rolls everything back: the report
says what would happen (or what is wrong, per line and field) and nothing is half-written.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlmodel import Session, col

from registry.models import Dpc, Hsc, HscStatus, Licensee
from registry.schemas import ApproveIn, HscIn, HscPatch, ImportReport, ImportRow
from registry.service import RegistryService
from serverkit.errors import InvalidInput, NotFound

KNOWN_COLUMNS = {"serial", "owner_bin", "dpc", "registry_number", "hall", "rack", "slot", "make", "model", "mac",
                 "firmware", "nominal_ths", "rated_w"}
MAX_ROWS = 200_000


class _Rollback(Exception):
    """Raised inside the transaction to undo a dry run or a file with errors."""


def _reference_ids(session: Session, raw: dict[str, str]) -> dict[str, Any]:
    ids: dict[str, Any] = {}
    if raw.get("owner_bin"):
        ids["owner_id"] = session.execute(select(col(Licensee.id)).where(col(Licensee.bin) == raw["owner_bin"])
                                          ).scalar()
        if ids["owner_id"] is None:
            raise InvalidInput("owner_bin", f"unknown licensee BIN {raw['owner_bin']}")
    if raw.get("dpc"):
        ids["dpc_id"] = session.execute(select(col(Dpc.id)).where(col(Dpc.name) == raw["dpc"])).scalar()
        if ids["dpc_id"] is None:
            raise InvalidInput("dpc", f"unknown DPC {raw['dpc']!r}")
    return ids


def _import_row(service: RegistryService, session: Session, raw: dict[str, str], actor: str) -> str:
    serial = raw.get("serial", "")
    if not serial:
        raise InvalidInput("serial", "required")
    given = {k: v for k, v in raw.items() if k in KNOWN_COLUMNS and v != "" and k not in {"owner_bin", "dpc"}}
    given.update(_reference_ids(session, raw))
    row = session.execute(select(Hsc).where(col(Hsc.serial) == serial)).scalar_one_or_none()
    if row is None:
        hsc = service.create_hsc_in(session, HscIn(**given), actor)
        service.move_status_in(session, hsc, HscStatus.REGISTERED.value, actor)
        return "create"
    if row.status == HscStatus.PENDING.value:
        position = {k: given.pop(k) for k in ("owner_id", "dpc_id", "registry_number", "hall", "rack", "slot")
                    if k in given}
        given.pop("serial")
        service.update_hsc_in(session, row, HscPatch(**given), actor)
        service.approve_in(session, row, ApproveIn(**position), actor)
        return "approve"
    given.pop("serial")
    return "update" if service.update_hsc_in(session, row, HscPatch(**given), actor) else "unchanged"


def _row_errors(exc: Exception) -> list[dict[str, str]]:
    if isinstance(exc, ValidationError):
        return [{"field": ".".join(str(p) for p in e["loc"]) or "row", "reason": e["msg"]} for e in exc.errors()]
    if isinstance(exc, InvalidInput):
        return [{"field": exc.field, "reason": exc.reason}]
    return [{"field": "serial", "reason": str(exc)}]


def _rows(reader: csv.DictReader[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, row) pairs; a line the csv module cannot read is a 422 naming it, never a 500."""
    line = 1
    while True:
        try:
            raw = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InvalidInput("file", f"line {reader.line_num}: {exc}") from None
        line += 1
        yield line, raw


def import_csv(service: RegistryService, text: str, actor: str, dry_run: bool = True) -> ImportReport:
    """Check (and unless `dry_run`, apply) a CSV file; see the module docstring."""
    reader = csv.DictReader(io.StringIO(text, newline=""))  # newline="": a bare CR is the csv module's to read
    try:
        header = set(reader.fieldnames or ())
    except csv.Error as exc:
        raise InvalidInput("file", f"line {reader.line_num}: {exc}") from None
    if "serial" not in header:
        raise InvalidInput("file", "the header row must name a 'serial' column")
    if unknown := header - KNOWN_COLUMNS:
        raise InvalidInput("file", f"unknown columns: {', '.join(sorted(unknown))}")
    report = ImportReport(dry_run=dry_run, applied=False, rows=[], counts={})
    try:
        with service.transaction() as session:
            for line, raw in _rows(reader):
                if line - 1 > MAX_ROWS:
                    raise InvalidInput("file", f"more than {MAX_ROWS} rows: split the file")
                raw = {k: (v or "").strip() for k, v in raw.items() if k is not None}
                report.rows.append(_checked_row(service, session, raw, actor, line))
            if dry_run or any(r.action == "error" for r in report.rows):
                raise _Rollback
            report.applied = True
    except _Rollback:
        pass
    for row in report.rows:
        report.counts[row.action] = report.counts.get(row.action, 0) + 1
    return report


def _checked_row(service: RegistryService, session: Session, raw: dict[str, str], actor: str, line: int
                 ) -> ImportRow:
    """One row inside a savepoint: a failing row is undone alone, so later rows are still checked."""
    savepoint = session.begin_nested()
    try:
        action = _import_row(service, session, raw, actor)
    except (InvalidInput, NotFound, ValidationError) as exc:
        savepoint.rollback()
        return ImportRow(line=line, serial=raw.get("serial") or None, action="error", errors=_row_errors(exc))
    savepoint.commit()
    return ImportRow(line=line, serial=raw.get("serial") or None, action=action)
