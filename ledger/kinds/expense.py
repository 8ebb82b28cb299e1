"""Expenses, paid or unpaid (SPEC §2, §3).

| event | debit | credit |
|---|---|---|
| expense, paid | expenses:<category> = amount; input_tax = taxAmount | cash/bank = amount + taxAmount |
| expense, unpaid | expenses:<category> = amount; input_tax = taxAmount | accounts_payable = amount + taxAmount |
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ledger import accounts as acc
from ledger.entries import ZERO, EntryDraft, Line
from ledger.kinds import reading as r
from ledger.kinds.registry import Side, SourceKind, register
from ledger.posting import draft
from ledger.sources import Party, ReadDocument, SourceDocument, Withdrawn

TYPE = "expense"
PAYMENT_STATUSES = frozenset({"paid", "unpaid"})


class Expense(SourceDocument):
    category: str
    amount: Decimal
    tax_amount: Decimal
    paid: bool
    payment_method: str | None


def read(raw: dict[str, Any], base_currency: str) -> ReadDocument:
    def read_expense(vendor_id: str, number: str | None) -> ReadDocument:
        updated_at = r.optional_date(raw.get("updatedAt"))
        if r.truthy(raw.get("isDeleted")):
            return Withdrawn(type=TYPE, id=raw.get("_id"), vendor_id=vendor_id, number=number, reason="deleted",
                             updated_at=updated_at)
        payment_status = r.status(raw.get("paymentStatus"), PAYMENT_STATUSES, "paymentStatus")
        r.check_currency(raw, base_currency)
        date = r.date(raw, "date")
        amount = r.amount(raw, "amount")
        tax_amount = r.amount(raw, "taxAmount", default=ZERO)
        category = raw.get("category")
        if not isinstance(category, str) or not category.strip():
            raise r.Problem("category", "missing expense category")
        if not acc.category_slug(category):
            raise r.Problem("category", f"category {category!r} has no letters or digits to name an account")
        paid = payment_status == "paid"
        method = r.method(raw.get("paymentMethod"), "paymentMethod") if paid else None
        return Expense(type=TYPE, id=raw.get("_id"), vendor_id=vendor_id, number=number, date=date,
                       updated_at=updated_at, party=Party(id=acc.category_slug(category), name=category.strip()),
                       category=category, amount=amount, tax_amount=tax_amount, paid=paid, payment_method=method)

    return r.read_or_reject(TYPE, "description", raw, read_expense, date_field="date", amount_field="amount")


def drafts(expense: Expense) -> list[EntryDraft]:
    credit = acc.settlement_account(expense.payment_method) if expense.paid and expense.payment_method \
        else acc.ACCOUNTS_PAYABLE
    return [draft(expense, expense.date, [
        Line(account=acc.expense_account_key(expense.category), debit=expense.amount),
        Line(account=acc.INPUT_TAX, debit=expense.tax_amount),
        Line(account=credit, credit=expense.amount + expense.tax_amount),
    ], basis={"date": expense.date, "category": expense.category.strip(), "amount": expense.amount,
              "taxAmount": expense.tax_amount, "paymentStatus": "paid" if expense.paid else "unpaid",
              "paymentMethod": expense.payment_method})]


def open_amount(expense: Expense) -> Decimal:
    """An unpaid expense leaves its amount and tax payable; a paid one nothing."""
    return ZERO if expense.paid else expense.amount + expense.tax_amount


EXPENSE = register(SourceKind(
    type=TYPE, step="expenses", label="Expenses", noun="Expense", collection="expenses", date_field="date",
    side=Side.PAYABLE, party_label="category", read=read, drafts=drafts, open_amount=open_amount, order=30,
))
