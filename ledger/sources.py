"""Source documents as the ledger understands them, after reading and validation.

These are normalized: money is `Decimal` at cents, dates are aware UTC
datetimes, statuses are lower-case. The raw shapes live in SPEC §2; turning one
into the other is `ledger.validation`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class SourceType(StrEnum):
    SALES_INVOICE = "sales_invoice"
    PURCHASE_INVOICE = "purchase_invoice"
    EXPENSE = "expense"


# The sync steps name the collections (plural); entries name the document type.
SYNC_TYPES: dict[str, SourceType] = {
    "sales_invoices": SourceType.SALES_INVOICE,
    "purchase_invoices": SourceType.PURCHASE_INVOICE,
    "expenses": SourceType.EXPENSE,
}

INVOICE_STATUSES = frozenset({"draft", "issued", "partially_paid", "paid", "void", "cancelled"})
NON_POSTING_STATUSES = frozenset({"draft", "void", "cancelled"})
EXPENSE_PAYMENT_STATUSES = frozenset({"paid", "unpaid"})
PAYMENT_METHODS = frozenset({"cash", "bank", "card", "upi", "cheque", "other"})


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)


class Payment(_Record):
    """A customer payment (or supplier payment) on an invoice; negative is a refund."""

    id: Any
    amount: Decimal
    date: datetime
    method: str


class Invoice(_Record):
    """A sales or purchase invoice that posts (issued, partially paid or paid)."""

    type: SourceType
    id: Any
    vendor_id: str
    number: str | None
    date: datetime
    subtotal: Decimal
    discount_total: Decimal
    tax_total: Decimal
    total: Decimal
    payments: tuple[Payment, ...]
    updated_at: datetime | None


class Expense(_Record):
    type: SourceType = SourceType.EXPENSE
    id: Any
    vendor_id: str
    number: str | None
    date: datetime
    category: str
    amount: Decimal
    tax_amount: Decimal
    paid: bool
    payment_method: str | None
    updated_at: datetime | None


class Withdrawn(_Record):
    """A document that posts nothing now (draft, void, cancelled, deleted).

    Anything it posted before is reversed.
    """

    type: SourceType
    id: Any
    vendor_id: str
    number: str | None
    reason: str
    updated_at: datetime | None


class Rejection(_Record):
    """Why a document failed validation: it is not posted, and it is not lost."""

    type: SourceType
    id: Any
    vendor_id: str
    number: str | None
    field: str
    reason: str


SourceDocument = Invoice | Expense | Withdrawn
