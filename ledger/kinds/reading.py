"""Reading raw source documents: the checks every kind shares.

The document is the unit of validation: the first problem found rejects it
(payments included), with the field and a reason a person can act on.
Documents that post nothing (draft, void, cancelled, deleted) are not validated
beyond their status: there is nothing in them to get wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from ledger.entries import ZERO
from ledger.parsing import InvalidValue, to_decimal, to_money, to_utc_datetime
from ledger.sources import Party, ReadDocument, Rejection

TOLERANCE = Decimal("0.01")
T = TypeVar("T")


class Problem(Exception):
    """Why a document is rejected: the field and a plain reason."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def read_or_reject(kind_type: str, number_field: str, raw: dict[str, Any],
                   read: Callable[[str, str | None], ReadDocument], date_field: str | None = None,
                   amount_field: str | None = None) -> ReadDocument:
    """`read(vendor_id, number)`, or the `Rejection` naming the first problem it found (with the
    document's `date_field` and `amount_field` as it states them)."""
    vendor_id = str(raw.get("vendorId", ""))
    number = raw.get(number_field)
    number = None if number is None else str(number)
    try:
        return read(vendor_id, number)
    except Problem as problem:
        return Rejection(type=kind_type, id=raw.get("_id"), vendor_id=vendor_id, number=number,
                         field=problem.field, reason=problem.reason,
                         date=_stated(raw.get(date_field) if date_field else None, to_utc_datetime),
                         amount=_stated(raw.get(amount_field) if amount_field else None, to_money))


def _stated(value: Any, reader: Callable[[Any], Any]) -> str | None:
    """A value as text for a person: read when it reads (a day, an amount at cents), else as given."""
    if value is None:
        return None
    try:
        read = reader(value)
    except InvalidValue:
        return str(value)[:40]
    return read.date().isoformat() if isinstance(read, datetime) else str(read)


def amount(raw: dict, field: str, default: Decimal | None = None) -> Decimal:
    """A non-negative amount at cents."""
    value = raw.get(field)
    if value is None and default is not None:
        return default
    result = value_of(to_money, value, field)
    if result < 0:
        raise Problem(field, f"{field} is negative ({result})")
    return result


def date(raw: dict, field: str) -> datetime:
    return value_of(to_utc_datetime, raw.get(field), field)


def value_of(reader: Callable[[Any], T], value: Any, field: str) -> T:
    try:
        return reader(value)
    except InvalidValue as problem:
        raise Problem(field, problem.reason) from None


def decimal(value: Any, field: str) -> Decimal:
    """An exact decimal, unrounded (quantities, unit prices)."""
    return value_of(to_decimal, value, field)


def status(value: Any, allowed: frozenset[str], field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Problem(field, f"missing {field}")
    result = value.strip().lower()
    if result not in allowed:
        raise Problem(field, f"unknown {field} {value!r}; expected one of {', '.join(sorted(allowed))}")
    return result


def method(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Problem(field, "missing payment method (cash, bank, card, upi, cheque or other)")
    return value.strip().lower()


def listed(raw: dict, field: str) -> list:
    value = raw.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Problem(field, f"{field} must be a list")
    return value


def optional_date(value: Any) -> datetime | None:
    try:
        return to_utc_datetime(value)
    except InvalidValue:
        return None


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def check_currency(raw: dict, base_currency: str) -> None:
    currency = raw.get("currency")
    if currency is None:
        return
    if not isinstance(currency, str) or currency.strip().upper() != base_currency.upper():
        raise Problem("currency", f"currency {currency!r} is not the vendor's base currency {base_currency}; "
                                  "multi-currency documents are not posted")


def party(raw: dict, field: str) -> Party | None:
    """`{id, name}` of a customer or supplier as the app stores it (not posting-relevant: loose)."""
    value = raw.get(field)
    if not isinstance(value, dict):
        return None
    name = value.get("name")
    identity = value.get("id")
    if name is None and identity is None:
        return None
    return Party(id=None if identity is None else str(identity), name=str(name if name is not None else identity))


def cents(value: Decimal) -> Decimal:
    return to_money(value)


__all__ = ["TOLERANCE", "ZERO", "Problem", "amount", "check_currency", "date", "decimal", "listed", "method",
           "optional_date", "party", "read_or_reject", "status", "truthy", "value_of"]
