"""Kazakh BIN/IIN (business / individual identification number): 12 digits, the last one a check digit.

The check digit is sum(d_i * w_i) mod 11 over the first 11 digits with weights 1..11; when that gives 10 it is
computed again with weights 3..11, 1, 2; when that still gives 10 the number is invalid (it is never issued).
"""

from __future__ import annotations

_FIRST_WEIGHTS = tuple(range(1, 12))
_SECOND_WEIGHTS = (3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2)


def check_digit(first11: str) -> int | None:
    """Check digit for the first 11 digits, or None when no valid number can start with them."""
    digits = [int(c) for c in first11]
    value = sum(d * w for d, w in zip(digits, _FIRST_WEIGHTS, strict=True)) % 11
    if value == 10:
        value = sum(d * w for d, w in zip(digits, _SECOND_WEIGHTS, strict=True)) % 11
    return None if value == 10 else value


def bin_problem(value: str) -> str | None:
    """Why `value` is not a valid BIN/IIN, or None when it is."""
    if len(value) != 12 or not value.isascii() or not value.isdigit():
        return "must be exactly 12 digits"
    expected = check_digit(value[:11])
    if expected is None:
        return "no valid check digit exists for these first 11 digits"
    if int(value[11]) != expected:
        return f"check digit is {value[11]}, expected {expected}"
    return None


def is_valid_bin(value: str) -> bool:
    return bin_problem(value) is None
