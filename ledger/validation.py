"""Read a raw source document into a ledger model, or say exactly why not.

The document is the unit of validation: the first problem found rejects it
(payments included), with the field and a reason a person can act on.
Documents that post nothing (draft, void, cancelled, deleted) are not
validated beyond their status: there is nothing in them to get wrong.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger.accounts import category_slug
from ledger.entries import ZERO
from ledger.ids import id_key
from ledger.parsing import InvalidValue, to_decimal, to_money, to_utc_datetime
from ledger.sources import (
    EXPENSE_PAYMENT_STATUSES,
    INVOICE_STATUSES,
    NON_POSTING_STATUSES,
    Expense,
    Invoice,
    Payment,
    Rejection,
    SourceDocument,
    SourceType,
    Withdrawn,
)

TOLERANCE = Decimal("0.01")


class _Reject(Exception):
    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason


def read_source(source_type: SourceType, raw: dict[str, Any], base_currency: str) -> SourceDocument | Rejection:
    """A raw document as an `Invoice`, `Expense` or `Withdrawn`; a `Rejection` if invalid."""
    vendor_id = str(raw.get("vendorId", ""))
    number = _number(source_type, raw)
    try:
        if source_type is SourceType.EXPENSE:
            return _read_expense(raw, vendor_id, number, base_currency)
        return _read_invoice(source_type, raw, vendor_id, number, base_currency)
    except _Reject as problem:
        return Rejection(
            type=source_type, id=raw.get("_id"), vendor_id=vendor_id, number=number,
            field=problem.field, reason=problem.reason,
        )


def _read_invoice(source_type: SourceType, raw: dict, vendor_id: str, number: str | None, base_currency: str):
    updated_at = _optional_date(raw.get("updatedAt"))
    # A deleted document posts nothing whatever its status: check that before validating the status.
    deleted = _truthy(raw.get("isDeleted"))
    status = None if deleted else _status(raw.get("status"), INVOICE_STATUSES, "status")
    if deleted or status in NON_POSTING_STATUSES:
        return Withdrawn(type=source_type, id=raw.get("_id"), vendor_id=vendor_id, number=number,
                         reason="deleted" if deleted else status, updated_at=updated_at)
    _check_currency(raw, base_currency)
    date = _date(raw, "invoiceDate")
    subtotal = _amount(raw, "subtotal")
    discount_total = _amount(raw, "discountTotal", default=ZERO)
    tax_total = _amount(raw, "taxTotal", default=ZERO)
    total = _amount(raw, "total")
    _check_items(raw, subtotal, discount_total)
    expected = subtotal - discount_total + tax_total
    if abs(total - expected) > TOLERANCE:
        raise _Reject("total", f"total {total} does not equal subtotal − discountTotal + taxTotal = {expected}; "
                               "correct the invoice totals in the app")
    payments = tuple(_payment(raw_payment, index) for index, raw_payment in enumerate(_list(raw, "payments")))
    _check_unique_payment_ids(payments)
    return Invoice(
        type=source_type, id=raw.get("_id"), vendor_id=vendor_id, number=number, date=date,
        subtotal=subtotal, discount_total=discount_total, tax_total=tax_total, total=total,
        payments=payments, updated_at=updated_at,
    )


def _read_expense(raw: dict, vendor_id: str, number: str | None, base_currency: str):
    updated_at = _optional_date(raw.get("updatedAt"))
    if _truthy(raw.get("isDeleted")):
        return Withdrawn(type=SourceType.EXPENSE, id=raw.get("_id"), vendor_id=vendor_id, number=number,
                         reason="deleted", updated_at=updated_at)
    payment_status = _status(raw.get("paymentStatus"), EXPENSE_PAYMENT_STATUSES, "paymentStatus")
    _check_currency(raw, base_currency)
    date = _date(raw, "date")
    amount = _amount(raw, "amount")
    tax_amount = _amount(raw, "taxAmount", default=ZERO)
    category = raw.get("category")
    if not isinstance(category, str) or not category.strip():
        raise _Reject("category", "missing expense category")
    if not category_slug(category):
        raise _Reject("category", f"category {category!r} has no letters or digits to name an account")
    paid = payment_status == "paid"
    method = _method(raw.get("paymentMethod"), "paymentMethod") if paid else None
    return Expense(
        id=raw.get("_id"), vendor_id=vendor_id, number=number, date=date, category=category,
        amount=amount, tax_amount=tax_amount, paid=paid, payment_method=method, updated_at=updated_at,
    )


def _payment(raw: Any, index: int) -> Payment:
    field = f"payments[{index}]"
    if not isinstance(raw, dict):
        raise _Reject(field, "a payment must be an object")
    if raw.get("_id") is None:
        raise _Reject(f"{field}._id", "payment has no _id, so it cannot be tracked; give every payment an id")
    return Payment(
        id=raw["_id"],
        amount=_value(to_money, raw.get("amount"), f"{field}.amount"),
        date=_value(to_utc_datetime, raw.get("date"), f"{field}.date"),
        method=_method(raw.get("method"), f"{field}.method"),
    )


def _check_unique_payment_ids(payments: tuple[Payment, ...]) -> None:
    """Each payment is its own posting unit, tied to its `_id`: two payments sharing one
    would silently collapse into a single entry (and the other amount be lost)."""
    seen: set[str] = set()
    for index, payment in enumerate(payments):
        key = id_key(payment.id)  # as the ledger keys its posting units
        if key in seen:
            raise _Reject(f"payments[{index}]._id", f"payment id {payment.id!r} is used by another payment of this "
                                                    "invoice; give every payment its own id")
        seen.add(key)


def _check_items(raw: dict, subtotal: Decimal, discount_total: Decimal) -> None:
    """Items must add up to the subtotal and the discount total (within a cent)."""
    if raw.get("items") is None:
        return
    items = _list(raw, "items")
    gross = Decimal(0)
    discounts = Decimal(0)
    for index, item in enumerate(items):
        field = f"items[{index}]"
        if not isinstance(item, dict):
            raise _Reject(field, "an item must be an object")
        quantity = _value(to_decimal, item.get("quantity"), f"{field}.quantity")
        unit_price = _value(to_decimal, item.get("unitPrice"), f"{field}.unitPrice")
        if item.get("discount") is not None:
            discounts += _value(to_decimal, item.get("discount"), f"{field}.discount")
        gross += quantity * unit_price
    if abs(gross - subtotal) > TOLERANCE:
        raise _Reject("subtotal", f"items add up to {_cents(gross)} but subtotal is {subtotal}; "
                                  "correct the item quantities, prices or the subtotal")
    if abs(discounts - discount_total) > TOLERANCE:
        raise _Reject("discountTotal", f"item discounts add up to {_cents(discounts)} but discountTotal is "
                                       f"{discount_total}; correct the discounts")


def _check_currency(raw: dict, base_currency: str) -> None:
    currency = raw.get("currency")
    if currency is None:
        return
    if not isinstance(currency, str) or currency.strip().upper() != base_currency.upper():
        raise _Reject("currency", f"currency {currency!r} is not the vendor's base currency {base_currency}; "
                                  "multi-currency documents are not posted")


def _amount(raw: dict, field: str, default: Decimal | None = None) -> Decimal:
    value = raw.get(field)
    if value is None and default is not None:
        return default
    amount = _value(to_money, value, field)
    if amount < 0:
        raise _Reject(field, f"{field} is negative ({amount})")
    return amount


def _date(raw: dict, field: str) -> datetime:
    return _value(to_utc_datetime, raw.get(field), field)


def _value(reader, value: Any, field: str):
    try:
        return reader(value)
    except InvalidValue as problem:
        raise _Reject(field, problem.reason) from None


def _status(value: Any, allowed: frozenset[str], field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Reject(field, f"missing {field}")
    status = value.strip().lower()
    if status not in allowed:
        raise _Reject(field, f"unknown {field} {value!r}; expected one of {', '.join(sorted(allowed))}")
    return status


def _method(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Reject(field, "missing payment method (cash, bank, card, upi, cheque or other)")
    return value.strip().lower()


def _list(raw: dict, field: str) -> list:
    value = raw.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Reject(field, f"{field} must be a list")
    return value


def _optional_date(value: Any) -> datetime | None:
    try:
        return to_utc_datetime(value)
    except InvalidValue:
        return None


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _number(source_type: SourceType, raw: dict) -> str | None:
    field = {"sales_invoice": "invoiceNumber", "purchase_invoice": "billNumber"}.get(source_type.value)
    value = raw.get(field) if field else raw.get("description")
    return None if value is None else str(value)


def _cents(value: Decimal) -> Decimal:
    return to_money(value)
