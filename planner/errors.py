"""The planner's input errors.

`PlannerInputError` is a `quota.errors.QuotaInputError`: the controller already maps that to a 422 whose `detail`
lists `{loc, msg}`, so a bad planner input (a missing hashprice, a bad CSV line, a negative budget) is refused the
same way as a bad schedule, with every problem named at once.
"""

from __future__ import annotations

from quota.errors import Issue, Problems, QuotaInputError


class PlannerInputError(QuotaInputError):
    """Planner input that cannot be used; nothing was computed or stored from it."""


def planner_issue(field: str, reason: str) -> PlannerInputError:
    return PlannerInputError([Issue(field, reason)])


class PlannerProblems(Problems):
    """`quota.errors.Problems` that raises a `PlannerInputError`."""

    def raise_if_any(self) -> None:
        if self.issues:
            raise PlannerInputError(self.issues)
