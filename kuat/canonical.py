"""Canonical JSON and its sha256: the one way Kuat hashes a record into a tamper-evident chain.

Sorted keys, no whitespace, UTF-8 kept as is; datetimes in UTC ISO 8601, dates ISO, Decimals as plain text. The
registry's audit chain (registry/audit.py) and the controller's money chain (controller/money/chain.py) both hash
with these functions, so an inspector needs one recipe to recompute either.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any


def jsonable(value: Any) -> Any:
    """A value json.dumps cannot write, as the text that stands for it (naive datetimes are taken to be UTC)."""
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=jsonable)


def digest(value: Any) -> str:
    """sha256 (hex) of the canonical JSON of `value`."""
    return hashlib.sha256(canonical(value).encode()).hexdigest()
