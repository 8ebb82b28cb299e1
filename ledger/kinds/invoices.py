"""What sales and purchase invoices share: their shape (SPEC §2), their validation and
their open amount. Each of the two kinds states its own posting rules."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger.ids import id_key
from ledger.kinds import reading as r
from ledger.parsing import to_money, to_utc_datetime
from ledger.sources import ReadDocument, Record, SourceDocument, Withdrawn

STATUSES = frozenset({"draft", "issued", "partially_paid", "paid", "void", "cancelled"})
NON_POSTING_STATUSES = frozenset({"draft", "void", "cancelled"})


class Payment(Record):
    """A payment on an invoice (received from a customer, made to a supplier); negative is a refund."""

    id: Any
    amount: Decimal
    date: datetime
    method: str


class Invoice(SourceDocument):
    """An invoice that posts (issued, partially paid or paid)."""

    subtotal: Decimal
    discount_total: Decimal
    tax_total: Decimal
    total: Decimal
    payments: tuple[Payment, ...]

    @property
    def net(self) -> Decimal:
        """Subtotal less discounts: what the sale or purchase itself is worth, before tax."""
        return self.subtotal - self.discount_total

    @property
    def round_off(self) -> Decimal:
        """What `total` carries beyond its parts (at most a cent either way)."""
        return self.total - (self.net + self.tax_total)

    @property
    def basis(self) -> dict[str, Any]:
        """What the invoice's own entry is posted from."""
        return {"invoiceDate": self.date, "subtotal": self.subtotal, "discountTotal": self.discount_total,
                "taxTotal": self.tax_total, "total": self.total}


def payment_basis(payment: Payment) -> dict[str, Any]:
    """What a payment's entry is posted from."""
    return {"payments.date": payment.date, "payments.amount": payment.amount, "payments.method": payment.method}


def read_invoice(kind_type: str, number_field: str, party_field: str, raw: dict[str, Any],
                 base_currency: str) -> ReadDocument:
    """A raw invoice as an `Invoice`, a `Withdrawn` or a `Rejection`."""

    def read(vendor_id: str, number: str | None) -> ReadDocument:
        updated_at = r.optional_date(raw.get("updatedAt"))
        # A deleted document posts nothing whatever its status: check that before validating the status.
        deleted = r.truthy(raw.get("isDeleted"))
        status = None if deleted else r.status(raw.get("status"), STATUSES, "status")
        if deleted or status in NON_POSTING_STATUSES:
            return Withdrawn(type=kind_type, id=raw.get("_id"), vendor_id=vendor_id, number=number,
                             reason="deleted" if deleted else str(status), updated_at=updated_at)
        r.check_currency(raw, base_currency)
        date = r.date(raw, "invoiceDate")
        subtotal = r.amount(raw, "subtotal")
        discount_total = r.amount(raw, "discountTotal", default=r.ZERO)
        tax_total = r.amount(raw, "taxTotal", default=r.ZERO)
        total = r.amount(raw, "total")
        _check_items(raw, subtotal, discount_total)
        expected = subtotal - discount_total + tax_total
        if abs(total - expected) > r.TOLERANCE:
            raise r.Problem("total", f"total {total} does not equal subtotal − discountTotal + taxTotal = {expected}; "
                                     "correct the invoice totals in the app")
        payments = tuple(_payment(raw_payment, index) for index, raw_payment in enumerate(r.listed(raw, "payments")))
        _check_unique_payment_ids(payments)
        return Invoice(type=kind_type, id=raw.get("_id"), vendor_id=vendor_id, number=number, date=date,
                       updated_at=updated_at, party=r.party(raw, party_field), subtotal=subtotal,
                       discount_total=discount_total, tax_total=tax_total, total=total, payments=payments)

    return r.read_or_reject(kind_type, number_field, raw, read, date_field="invoiceDate", amount_field="total")


def open_amount(invoice: Invoice) -> Decimal:
    """The invoice's total less its payments (refunds add back)."""
    return invoice.total - sum((payment.amount for payment in invoice.payments), r.ZERO)


def _payment(raw: Any, index: int) -> Payment:
    field = f"payments[{index}]"
    if not isinstance(raw, dict):
        raise r.Problem(field, "a payment must be an object")
    if raw.get("_id") is None:
        raise r.Problem(f"{field}._id", "payment has no _id, so it cannot be tracked; give every payment an id")
    return Payment(id=raw["_id"], amount=r.value_of(to_money, raw.get("amount"), f"{field}.amount"),
                   date=r.value_of(to_utc_datetime, raw.get("date"), f"{field}.date"),
                   method=r.method(raw.get("method"), f"{field}.method"))


def _check_unique_payment_ids(payments: tuple[Payment, ...]) -> None:
    """Each payment is its own posting unit, tied to its `_id`: two payments sharing one
    would silently collapse into a single entry (and the other amount be lost)."""
    seen: set[str] = set()
    for index, payment in enumerate(payments):
        key = id_key(payment.id)  # as the ledger keys its posting units
        if key in seen:
            raise r.Problem(f"payments[{index}]._id", f"payment id {payment.id!r} is used by another payment of "
                                                      "this invoice; give every payment its own id")
        seen.add(key)


def _check_items(raw: dict, subtotal: Decimal, discount_total: Decimal) -> None:
    """Items must add up to the subtotal and the discount total (within a cent)."""
    if raw.get("items") is None:
        return
    gross = Decimal(0)
    discounts = Decimal(0)
    for index, item in enumerate(r.listed(raw, "items")):
        field = f"items[{index}]"
        if not isinstance(item, dict):
            raise r.Problem(field, "an item must be an object")
        quantity = r.decimal(item.get("quantity"), f"{field}.quantity")
        unit_price = r.decimal(item.get("unitPrice"), f"{field}.unitPrice")
        if item.get("discount") is not None:
            discounts += r.decimal(item.get("discount"), f"{field}.discount")
        gross += quantity * unit_price
    if abs(gross - subtotal) > r.TOLERANCE:
        raise r.Problem("subtotal", f"items add up to {r.cents(gross)} but subtotal is {subtotal}; "
                                    "correct the item quantities, prices or the subtotal")
    if abs(discounts - discount_total) > r.TOLERANCE:
        raise r.Problem("discountTotal", f"item discounts add up to {r.cents(discounts)} but discountTotal is "
                                         f"{discount_total}; correct the discounts")
