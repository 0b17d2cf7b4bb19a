"""Streaming export of the HSC registry as CSV or JSON Lines.

Rows are read in keyset batches on the primary key (``id > last`` ... ``LIMIT n``) inside one read transaction
and leave as text chunks, one chunk per batch: memory stays flat however large the registry is.

To reach 100,000+ rows/s the database does the formatting: timestamps become ISO 8601 text
(``2026-01-01T08:00:00.000000Z``) in SQL, JSON Lines records are built by the database's JSON functions (SQLite
``json_object``, PostgreSQL ``json_build_object``), CSV lines by SQLite ``printf`` / PostgreSQL concatenation
(text cells quoted, ``"`` doubled, RFC 4180), and each batch's lines are joined by the database
(``group_concat`` / ``string_agg``): Python handles one string per batch, never one object per row. CSV cells
hold the ``pools`` list as JSON text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import ColumnElement, Select, String, cast, func, literal, select, type_coerce
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.types import NullType
from sqlmodel import col

from registry.models import Dpc, Hsc, Licensee
from registry.service import HscFilter, RegistryService, hsc_conditions

HSC_COLUMNS = (
    "id", "serial", "registry_number", "status", "make", "model", "firmware", "mac", "nominal_ths", "rated_w",
    "owner_id", "dpc_id", "hall", "rack", "slot", "pdu", "pdu_outlet", "pools", "first_seen_at", "registered_at",
    "decommissioned_at", "changed_at", "last_seen_at",
)
TIME_COLUMNS = frozenset({"first_seen_at", "registered_at", "decommissioned_at", "changed_at", "last_seen_at"})
ENUM_COLUMNS = frozenset({"status", "zone"})
NUMBER_COLUMNS = frozenset({"id", "nominal_ths", "rated_w", "owner_id", "dpc_id", "pdu_outlet"})
JOINED_COLUMNS = ("owner_bin", "owner_name", "owner_licence", "dpc_name", "zone")
EXPORT_COLUMNS = HSC_COLUMNS + JOINED_COLUMNS
BATCH = 5000


def _iso(column: Any, dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    return func.replace(column, " ", "T") + literal("Z")  # SQLite keeps UTC as 'YYYY-MM-DD HH:MM:SS.ffffff'


def _columns(dialect: str, for_json: bool) -> list[ColumnElement[Any]]:
    """The export's columns as raw (unprocessed) values, in EXPORT_COLUMNS order."""
    table = Hsc.__table__  # type: ignore[attr-defined]
    values: list[ColumnElement[Any]] = []
    for name in HSC_COLUMNS:
        column = table.c[name]
        if name in TIME_COLUMNS:
            values.append(type_coerce(_iso(column, dialect), NullType()))
        elif not for_json and name in NUMBER_COLUMNS | {"pools"}:  # text already: the csv module only quotes
            values.append(type_coerce(cast(column, String), NullType()))
        elif name == "pools" and dialect != "postgresql":
            values.append(func.json(type_coerce(column, String)))
        else:
            values.append(type_coerce(column, NullType()))
    joined = (Licensee.bin, Licensee.name, Licensee.licence_number, Dpc.name, Dpc.zone)
    return values + [type_coerce(col(c), NullType()) for c in joined]


def _is_bare(name: str) -> bool:
    return name in NUMBER_COLUMNS or name in TIME_COLUMNS or name in ENUM_COLUMNS  # nothing to quote in these


def _csv_line(columns: list[ColumnElement[Any]], dialect: str) -> ColumnElement[Any]:
    """One CSV line per row, built in SQL: numbers, times and enums bare, text quoted with inner quotes doubled.

    SQLite does it in one printf (``%w`` doubles double quotes; a NULL text becomes ``""``); PostgreSQL
    concatenates (a NULL text becomes an empty cell)."""
    texts = [type_coerce(value, String) for value in columns]
    if dialect != "postgresql":
        fmt = ",".join("%s" if _is_bare(name) else '"%w"' for name in EXPORT_COLUMNS)
        args = [func.coalesce(text, literal("")) for text in texts]
        return type_coerce(func.printf(fmt, *args), NullType())
    cells: list[ColumnElement[Any]] = []
    for name, text in zip(EXPORT_COLUMNS, texts, strict=True):
        quoted = text if _is_bare(name) else literal('"') + func.replace(text, '"', '""') + literal('"')
        cells.append(func.coalesce(quoted, literal("")))
    line = cells[0]
    for cell in cells[1:]:
        line = line + literal(",") + cell
    return type_coerce(line, NullType())


def _json_line(columns: list[ColumnElement[Any]], dialect: str) -> ColumnElement[Any]:
    args = [x for name, value in zip(EXPORT_COLUMNS, columns, strict=True) for x in (literal(name), value)]
    if dialect == "postgresql":
        return type_coerce(cast(func.json_build_object(*args), String), NullType())
    return type_coerce(func.json_object(*args), NullType())


def export_query(flt: HscFilter, dialect: str, jsonl: bool = False) -> Select[Any]:
    """One text column per row, `line` (a JSON object or a CSV line), with the row's `id`, ordered by id."""
    table = Hsc.__table__  # type: ignore[attr-defined]
    columns = _columns(dialect, jsonl)
    line = _json_line(columns, dialect) if jsonl else _csv_line(columns, dialect)
    return (
        select(line.label("line"), table.c.id.label("id"))
        .select_from(table.outerjoin(Licensee, col(Licensee.id) == table.c.owner_id)
                     .outerjoin(Dpc, col(Dpc.id) == table.c.dpc_id))
        .where(*hsc_conditions(flt))
        .order_by(table.c.id)
    )


def batch_query(flt: HscFilter, dialect: str, jsonl: bool, after_id: int, batch: int
                ) -> Select[Any, Any, int]:
    """The next `batch` lines after `after_id`, joined by the database into one text (plus last id and count):
    keyset batches on the primary key, so Python handles one string per batch, not one object per row."""
    table = Hsc.__table__  # type: ignore[attr-defined]
    page = export_query(flt, dialect, jsonl).where(table.c.id > after_id).limit(batch).subquery()
    if dialect == "postgresql":
        joined = func.string_agg(page.c.line, aggregate_order_by(literal("\n"), page.c.id))
    else:  # SQLite aggregates the ordered subquery in order
        joined = func.group_concat(page.c.line, literal("\n"))
    return select(type_coerce(joined, NullType()), func.max(page.c.id), func.count())


def _lines(service: RegistryService, flt: HscFilter, jsonl: bool, batch: int) -> Iterator[str]:
    """Chunks of `batch` lines from one read transaction (a consistent snapshot on PostgreSQL too)."""
    with service.reading() as session:
        dialect = session.get_bind().dialect.name
        options = {"isolation_level": "REPEATABLE READ"} if dialect == "postgresql" else {}
        connection = session.connection(execution_options=options)
        after_id = 0
        while True:
            text, last_id, count = connection.execute(batch_query(flt, dialect, jsonl, after_id, batch)).one()
            if not count:
                return
            yield text + "\n"
            after_id = last_id


def iter_csv(service: RegistryService, flt: HscFilter, batch: int = BATCH) -> Iterator[str]:
    """A header line, then one chunk per batch."""
    yield ",".join(EXPORT_COLUMNS) + "\n"
    yield from _lines(service, flt, False, batch)


def iter_jsonl(service: RegistryService, flt: HscFilter, batch: int = BATCH) -> Iterator[str]:
    """One JSON object per line, keys as in the CSV header."""
    yield from _lines(service, flt, True, batch)
