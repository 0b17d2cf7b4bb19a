"""Streaming export of the HSC registry as CSV or JSON Lines.

Rows come from a server-side cursor (``stream_results``, ``yield_per``) in batches and leave as text chunks, one
chunk per batch: memory stays flat however large the registry is.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, select
from sqlmodel import col

from registry.models import Dpc, Hsc, Licensee
from registry.service import HscFilter, RegistryService, hsc_conditions

HSC_COLUMNS = (
    "id", "serial", "registry_number", "status", "make", "model", "firmware", "mac", "nominal_ths", "rated_w",
    "owner_id", "dpc_id", "hall", "rack", "slot", "pdu", "pdu_outlet", "pools", "first_seen_at", "registered_at",
    "decommissioned_at", "changed_at", "last_seen_at",
)
JOINED_COLUMNS = ("owner_bin", "owner_name", "owner_licence", "dpc_name", "zone")
EXPORT_COLUMNS = HSC_COLUMNS + JOINED_COLUMNS
BATCH = 5000


def export_query(flt: HscFilter) -> Select[Any]:
    table = Hsc.__table__  # type: ignore[attr-defined]
    return (
        select(*(table.c[name] for name in HSC_COLUMNS), col(Licensee.bin), col(Licensee.name),
               col(Licensee.licence_number), col(Dpc.name), col(Dpc.zone))
        .select_from(table.outerjoin(Licensee, col(Licensee.id) == table.c.owner_id)
                     .outerjoin(Dpc, col(Dpc.id) == table.c.dpc_id))
        .where(*hsc_conditions(flt))
        .order_by(table.c.id)
    )


def _text(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def iter_batches(service: RegistryService, flt: HscFilter, batch: int = BATCH) -> Iterator[Sequence[Any]]:
    stmt = export_query(flt).execution_options(stream_results=True, yield_per=batch)
    with service.reading() as session:
        result = session.execute(stmt)
        yield from result.partitions(batch)


def iter_csv(service: RegistryService, flt: HscFilter, batch: int = BATCH) -> Iterator[str]:
    """A header line, then one chunk per batch. Pools are joined with a space."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    pools_at = EXPORT_COLUMNS.index("pools")
    for rows in iter_batches(service, flt, batch):
        for row in rows:
            values = [_text(v) for v in row]
            values[pools_at] = " ".join(values[pools_at] or ())
            writer.writerow(values)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def iter_jsonl(service: RegistryService, flt: HscFilter, batch: int = BATCH) -> Iterator[str]:
    """One JSON object per line, keys as in the CSV header."""
    for rows in iter_batches(service, flt, batch):
        yield "".join(json.dumps(dict(zip(EXPORT_COLUMNS, row, strict=True)), default=_text,
                                 ensure_ascii=False) + "\n" for row in rows)
