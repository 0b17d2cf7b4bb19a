"""Tolerant JSON for cgminer-family replies: real firmware sends broken JSON and drivers must read it anyway.

Repairs, in order of cost: trailing NUL/whitespace; `}{` between objects (old bmminer STATS); `[,{` and `,}`/`,]`;
`\\'` escapes (Whatsminer firmware strings); bare inf/nan tokens; and finally a truncated reply (cgminer caps
output near 64 KB), closed at the last complete element.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_BARE_NONFINITE = re.compile(r"(?<=[:\[,])\s*-?(?:inf|nan|Infinity|NaN)\s*(?=[,}\]])")
_MAX_TRUNCATION_TRIES = 64


class BrokenReply(ValueError):
    """The text could not be repaired into JSON."""


def loads_tolerant(raw: bytes | str) -> Any:
    """Parse a cgminer-family reply, repairing the breakage real firmware emits."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    text = text.replace("\x00", "").strip()
    if not text:
        raise BrokenReply("empty reply")
    try:
        return json.loads(text)
    except ValueError:
        pass
    fixed = _repair_tokens(text)
    try:
        return json.loads(fixed)
    except ValueError:
        pass
    closed = _close_truncated(fixed)
    if closed is not None:
        return closed
    raise BrokenReply(f"unrepairable reply ({len(text)} chars): {text[:120]!r}")


def _repair_tokens(text: str) -> str:
    text = re.sub(r"}\s*{", "},{", text)
    text = re.sub(r"\[\s*,", "[", text)
    text = re.sub(r",\s*([}\]])", r"\1", text)
    text = text.replace("\\'", "'")
    return _BARE_NONFINITE.sub("null", text)


def _close_truncated(text: str) -> Any | None:
    """Cut a truncated reply back to its last complete element and close the open brackets."""
    cuts: list[tuple[int, str]] = []  # (position of a ',' outside strings, closers needed there)
    stack: list[str] = []
    in_string = escaped = False
    for pos, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack:
            stack.pop()
        elif ch == ",":
            cuts.append((pos, "".join(reversed(stack))))
    if not stack and not in_string:
        return None  # not a truncation: something else is wrong
    for pos, closers in reversed(cuts[-_MAX_TRUNCATION_TRIES:]):
        try:
            return json.loads(text[:pos] + closers)
        except ValueError:
            continue
    return None


def num(value: Any) -> float | None:
    """A finite number from whatever firmware put there: 12, 12.5, "54997.01", "3250 W", "" -> None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        match = re.match(r"\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)", value)
        if not match:
            return None
        result = float(match.group(1))
    else:
        return None
    return result if math.isfinite(result) else None


def integer(value: Any) -> int | None:
    number = num(value)
    return None if number is None else round(number)
