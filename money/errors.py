"""The money package's exceptions: one tree, mapped to HTTP once by controller/money/api.py.

- `ImportRefused`: a file that cannot be imported; names the file, the line (1-based; 0 for the file as a whole)
  and the reason. Nothing of such a file is stored.
- `MissingInput`: a figure cannot be computed because an input is absent (no rate for the day, no quote); names
  what is missing, so the monthly table can list it.
- `InvalidInput`: a request that makes no sense (an unknown asset, a month out of range); names the field.
"""

from __future__ import annotations


class MoneyError(Exception):
    """Base of every error the money side raises on purpose."""


class ImportRefused(MoneyError):
    def __init__(self, file: str, line: int, reason: str) -> None:
        where = f"{file}, line {line}" if line else file
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.line = line
        self.reason = reason


class MissingInput(MoneyError):
    def __init__(self, what: str) -> None:
        super().__init__(f"missing input: {what}")
        self.what = what


class InvalidInput(MoneyError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
