"""Registry errors. The API turns `InvalidInput` into a 422 naming the field, `NotFound` into a 404."""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every error the registry raises on purpose."""


class InvalidInput(RegistryError):
    """Bad input: names the field and the reason (bad BIN, unknown licensee, duplicate serial, dates out of order)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(RegistryError):
    def __init__(self, entity: str, key: object) -> None:
        super().__init__(f"{entity} {key!r} not found")
        self.entity = entity
        self.key = key
