"""Turn the loosely typed values business apps store into exact values.

Money arrives as int, float, numeric string or BSON Decimal128 and leaves as a
`Decimal` rounded half-up to cents. Floats are read through their shortest
repr, so 0.1 + 0.2 is 0.30000000000000004, i.e. 0.30, never a binary artefact.
"""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from bson.decimal128 import Decimal128

CENT = Decimal("0.01")


class InvalidValue(ValueError):
    """A value that cannot be read; `reason` is written for a person."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def to_decimal(value: object) -> Decimal:
    """Exact decimal of a numeric value, unrounded (quantities, unit prices)."""
    if value is None:
        raise InvalidValue("missing")
    if isinstance(value, bool):
        raise InvalidValue(f"not a number: {value!r}")
    if isinstance(value, Decimal128):
        number = decimal_of_bid(value.bid)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise InvalidValue("missing (empty string)")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise InvalidValue(f"not a number: {_preview(value)}") from None
    elif isinstance(value, dict):
        raise InvalidValue("an object where a number belongs")
    else:
        raise InvalidValue(f"not a number: {type(value).__name__}")
    if not number.is_finite():
        raise InvalidValue(f"not a finite number: {_preview(value)}")
    return number


def decimal_of_bid(bid: bytes) -> Decimal:
    """The exact Decimal of a Decimal128's 16 bytes. bson's `to_decimal` is pure Python and was the
    largest CPU cost of reading amounts; this decodes the usual form (sign, 14-bit exponent, 113-bit
    coefficient) in a few integer operations and leaves every other form (infinity, NaN, more than 34
    digits, an exponent out of range) to bson, which defines what they mean."""
    low, high = _TWO_WORDS.unpack(bid)
    coefficient = ((high & _HIGH_COEFFICIENT) << 64) | low
    biased_exponent = (high >> 49) & 0x3FFF
    if (high >> 61) & 0b11 == 0b11 or coefficient > _MAX_COEFFICIENT or biased_exponent > _MAX_BIASED_EXPONENT:
        return Decimal128.from_bid(bid).to_decimal()
    return Decimal(f"{'-' if high >> 63 else ''}{coefficient}E{biased_exponent - _EXPONENT_BIAS}")


_TWO_WORDS = struct.Struct("<QQ")
_HIGH_COEFFICIENT = (1 << 49) - 1
_MAX_COEFFICIENT = 10**34 - 1
_EXPONENT_BIAS = 6176
_MAX_BIASED_EXPONENT = 6111 + _EXPONENT_BIAS


@lru_cache(maxsize=1 << 12)
def to_decimal128(amount: Decimal) -> Decimal128:
    """The BSON form of a cent amount (every amount the ledger writes is quantized to cents,
    so equal amounts have one representation and can share one cached value)."""
    return Decimal128(amount)


def to_money(value: object) -> Decimal:
    """`to_decimal` rounded half-up to two places."""
    number = to_decimal(value)
    try:
        return number.quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than the decimal context holds (e.g. 1e30 in cents)
        raise InvalidValue(f"too large to be an amount: {_preview(value)}") from None


def to_utc_datetime(value: object) -> datetime:
    """A BSON datetime or ISO-8601 string as an aware UTC datetime.

    Date-only strings and strings without an offset are read as UTC, which is
    how the business app writes them. Precision is cut to milliseconds, as BSON stores it.
    """
    if value is None:
        raise InvalidValue("missing")
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise InvalidValue("missing (empty string)")
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            raise InvalidValue(f"not an ISO-8601 date: {_preview(value)}") from None
    elif isinstance(value, dict):
        raise InvalidValue("an object where a date belongs")
    else:
        raise InvalidValue(f"not a date: {type(value).__name__}")
    # BSON keeps milliseconds: truncate now so a stored date reads back equal.
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
