"""Checking a channel document (webhook or e-mail list) with every bad field named, and the one 422 error that
carries several fields (serverkit's InvalidInput names one)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from alerts.rules import Issue
from serverkit.errors import InvalidInput

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
EMAIL = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+$")
MIN_SECRET = 16
CHANNEL_KEYS = frozenset({"name", "kind", "url", "secret", "recipients", "enabled"})


class InvalidFields(InvalidInput):
    """422 naming every bad field at once (FastAPI's own validation-error shape)."""

    def __init__(self, issues: Sequence[Issue]) -> None:
        super().__init__(issues[0].field, "; ".join(f"{i.field}: {i.reason}" for i in issues))
        self.issues = list(issues)

    def body(self) -> dict[str, Any]:
        return {"detail": [{"loc": [self.location, *i.field.split(".")], "msg": i.reason, "type": "value_error"}
                           for i in self.issues]}  # fmt: skip


def check_channel(doc: Any, existing: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[Issue]]:
    """The channel's fields, or every problem. `existing`: the stored channel an update starts from (its secret
    is kept when the update sends none: secrets are write-only)."""
    issues: list[Issue] = []
    if not isinstance(doc, Mapping):
        return {}, [Issue("body", "must be a JSON object")]
    base = dict(existing or {})
    for k in sorted(set(doc) - CHANNEL_KEYS):
        issues.append(Issue(k, "unknown field"))
    out = {**base, **{k: v for k, v in doc.items() if k in CHANNEL_KEYS}}
    name = out.get("name")
    if not isinstance(name, str) or not NAME.match(name) or name == "dashboard":
        issues.append(Issue("name", "1-100 letters, digits, '.', '_' or '-' (not 'dashboard': built in)"))
    kind = out.get("kind")
    if kind not in ("webhook", "email"):
        issues.append(Issue("kind", "one of webhook, email"))
    if not isinstance(out.get("enabled", True), bool):
        issues.append(Issue("enabled", "must be true or false"))
    if kind == "webhook":
        _webhook(out, issues)
    elif kind == "email":
        _email(out, issues)
    return out, issues


def _webhook(out: dict[str, Any], issues: list[Issue]) -> None:
    url = out.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or len(url or "") > 2000:
        issues.append(Issue("url", "an http:// or https:// URL of at most 2000 characters"))
    secret = out.get("secret")
    if not isinstance(secret, str) or not MIN_SECRET <= len(secret) <= 500:
        issues.append(Issue("secret", f"required: a shared secret of {MIN_SECRET} to 500 characters (the HMAC key)"))
    if out.get("recipients"):
        issues.append(Issue("recipients", "only e-mail channels have recipients"))
    out["recipients"] = []


def _email(out: dict[str, Any], issues: list[Issue]) -> None:
    rec = out.get("recipients")
    if not isinstance(rec, list) or not rec or len(rec) > 100:
        issues.append(Issue("recipients", "a list of 1 to 100 e-mail addresses"))
    else:
        bad = [r for r in rec if not isinstance(r, str) or not EMAIL.match(r)]
        if bad:
            issues.append(Issue("recipients", f"not e-mail addresses: {', '.join(map(str, bad))}"))
    for k in ("url", "secret"):
        if out.get(k):
            issues.append(Issue(k, "only webhooks have one"))
        out[k] = None
