"""Decimal helpers: amounts keep every digit of their inputs; rounding happens only where a figure is shown or
reported, at the places named here."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

TENGE = Decimal("0.01")  # reported tenge
KWH = Decimal("0.001")  # energy from telemetry, as Decimal
UNITS = Decimal("0.00000001")  # asset quantities (satoshi)
RATIO = Decimal("0.0001")


def dec(value: object) -> Decimal:
    """A Decimal from str/int/Decimal (floats through their repr, so 0.1 is 0.1); ValueError when not finite."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, float):
        result = Decimal(repr(value))
    else:
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
    if not result.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return result


def q(value: Decimal, step: Decimal = TENGE) -> Decimal:
    return value.quantize(step, rounding=ROUND_HALF_UP)


def kwh(value: float) -> Decimal:
    return q(dec(value), KWH)


def plain(value: Decimal | None) -> str | None:
    """A Decimal as plain text (no exponent), for JSON and CSV."""
    if value is None:
        return None
    return format(value, "f")
