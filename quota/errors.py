"""Input errors the controller turns into HTTP 422: every problem names the field and the reason."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Issue:
    field: str  # dotted path into the pushed document, e.g. "hours[3].kwh"
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class QuotaInputError(ValueError):
    """A push that cannot be accepted; nothing of it was applied. `issues` lists every problem found."""

    def __init__(self, issues: list[Issue]) -> None:
        if not issues:
            raise ValueError("QuotaInputError needs at least one issue")
        self.issues = list(issues)
        super().__init__("; ".join(str(i) for i in self.issues))

    def as_detail(self) -> list[dict[str, str]]:
        """The shape FastAPI uses for a 422 body's `detail`."""
        return [{"loc": i.field, "msg": i.reason} for i in self.issues]


class Problems:
    """Collects issues while a document is checked, then raises them all at once."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def add(self, field: str, reason: str) -> None:
        self.issues.append(Issue(field, reason))

    def raise_if_any(self) -> None:
        if self.issues:
            raise QuotaInputError(self.issues)
