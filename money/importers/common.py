"""What every parser shares: strict CSV reading (known columns only, one error naming the line), numbers, dates,
JSON with line numbers for the records it refuses."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from money.errors import ImportRefused
from money.numbers import dec
from registry.bin import bin_problem

MAX_BYTES = 64 * 1024 * 1024


def text_of(name: str, data: bytes) -> str:
    if not data.strip():
        raise ImportRefused(name, 0, "the file is empty")
    if len(data) > MAX_BYTES:
        raise ImportRefused(name, 0, f"the file is larger than {MAX_BYTES // 2**20} MiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportRefused(name, line, "not UTF-8 text") from None


class Row:
    """One CSV row: fields by column name; `refuse` raises with this row's line."""

    def __init__(self, name: str, line: int, values: dict[str, str]) -> None:
        self.name, self.line, self.values = name, line, values

    def refuse(self, reason: str) -> ImportRefused:
        return ImportRefused(self.name, self.line, reason)

    def text(self, col: str, required: bool = True) -> str:
        value = (self.values.get(col) or "").strip()
        if required and not value:
            raise self.refuse(f"{col}: empty")
        return value

    def number(self, col: str, positive: bool = False, required: bool = True) -> Decimal | None:
        raw = self.text(col, required)
        if not raw:
            return None
        return number(raw, col, self, positive)

    def day(self, col: str, required: bool = True) -> date | None:
        raw = self.text(col, required)
        return parse_day(raw, col, self) if raw else None

    def bin(self, col: str) -> str:
        value = self.text(col)
        problem = bin_problem(value)
        if problem:
            raise self.refuse(f"{col}: {value!r} is not a BIN/IIN ({problem})")
        return value


def number(raw: str, col: str, where: Row, positive: bool = False) -> Decimal:
    cleaned = raw.replace("\u00a0", "").replace(" ", "")
    if "," in cleaned and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")  # a decimal comma (Kazakh and Russian tables)
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", cleaned):
        raise where.refuse(f"{col}: {raw!r} is not a number")
    value = dec(cleaned)
    if value < 0 or (positive and value == 0):
        raise where.refuse(f"{col}: {raw!r} must be {'positive' if positive else 'zero or more'}")
    return value


def parse_day(raw: str, col: str, where: Row) -> date:
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    raise where.refuse(f"{col}: {raw!r} is not a date (YYYY-MM-DD or DD.MM.YYYY)")


def csv_rows(name: str, data: bytes, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> Iterator[Row]:
    """Rows of a CSV file whose header names every required column, and no column not listed. Comma, semicolon
    or tab separated (from the header line); blank lines are skipped."""
    text = text_of(name, data)
    first = text.splitlines()[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except csv.Error as exc:
        raise ImportRefused(name, 1, f"bad CSV header: {exc}") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportRefused(name, 1, f"header lacks column(s) {', '.join(missing)} (has: {', '.join(header)})")
    unknown = [c for c in header if c not in required and c not in optional]
    if unknown:
        raise ImportRefused(name, 1, f"unknown column(s) {', '.join(unknown)} (known: "
                                     f"{', '.join(required + optional)})")
    if len(set(header)) != len(header):
        raise ImportRefused(name, 1, "a column is named twice")
    any_row = False
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ImportRefused(name, reader.line_num, f"bad CSV: {exc}") from None
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            raise ImportRefused(name, reader.line_num, f"{len(fields)} fields, the header has {len(header)}")
        any_row = True
        yield Row(name, reader.line_num, dict(zip(header, fields, strict=True)))
    if not any_row:
        raise ImportRefused(name, 0, "no data rows")


def load_json(name: str, data: bytes) -> Any:
    text = text_of(name, data)
    try:
        return json.loads(text, parse_float=Decimal, parse_int=Decimal)
    except json.JSONDecodeError as exc:
        raise ImportRefused(name, exc.lineno, f"bad JSON: {exc.msg}") from None


def line_of(text: str, needle: str, start: int = 0) -> tuple[int, int]:
    """(1-based line, offset) of the first `needle` at or after `start`, for errors about a JSON record."""
    at = text.find(needle, start)
    if at < 0:
        return 0, start
    return text.count("\n", 0, at) + 1, at + len(needle)


class JsonRecords:
    """Records of a JSON list with the line each starts on (found by a key's value in the text, in order)."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self.text = text_of(name, data)
        self.value = load_json(name, data)
        self._pos = 0

    def locate(self, record: dict[str, Any], key: str) -> int:
        raw = record.get(key)
        if raw is None:
            return 0
        needle = json.dumps(str(raw)) if not isinstance(raw, Decimal) else str(raw)
        line, self._pos = line_of(self.text, needle, self._pos)
        return line


def json_row(name: str, line: int, record: Any) -> Row:
    if not isinstance(record, dict):
        raise ImportRefused(name, line, "each record must be a JSON object")
    return Row(name, line, {str(k).lower(): "" if v is None else str(v) for k, v in record.items()})


def check_keys(row: Row, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in row.values]
    if missing:
        raise row.refuse(f"record lacks field(s) {', '.join(missing)}")
    unknown = [c for c in row.values if c not in required and c not in optional]
    if unknown:
        raise row.refuse(f"unknown field(s) {', '.join(unknown)}")


class Records(list[Any]):
    """The records of a file, in file order, with the line each came from (`lines[i]` for `self[i]`)."""

    def __init__(self, pairs: list[tuple[int, Any]]) -> None:
        super().__init__(record for _, record in pairs)
        self.lines = [line for line, _ in pairs]

    def line_of(self, index: int) -> int:
        return self.lines[index] if index < len(self.lines) else 0


def records(rows: list[tuple[Row, Any]]) -> Records:
    return Records([(row.line, record) for row, record in rows])


def no_duplicates(rows: list[tuple[Row, Any]], key: Any, what: str) -> None:
    seen: dict[Any, int] = {}
    for row, record in rows:
        k = key(record)
        if k in seen:
            raise row.refuse(f"the same {what} as line {seen[k]}")
        seen[k] = row.line
