"""The posting rules (SPEC §3): what each source document should have in the ledger.

Each function returns the drafts a document's posting units should currently
carry; deciding what to write given what is already there is `reconcile`.
Zero lines are left out, and an entry whose lines are all zero is not posted.
"""

from __future__ import annotations

from ledger import accounts as acc
from ledger.entries import ZERO, EntryDraft, Line, SourceRef
from ledger.sources import Expense, Invoice, Payment, SourceDocument, SourceType, Withdrawn


def drafts_for(document: SourceDocument) -> list[EntryDraft]:
    """Everything a source document should currently have posted."""
    if isinstance(document, Withdrawn):
        return []
    if isinstance(document, Expense):
        return _keep_nonzero([expense_entry(document)])
    entries = [invoice_entry(document)] + [payment_entry(document, payment) for payment in document.payments]
    return _keep_nonzero(entries)


def invoice_entry(invoice: Invoice) -> EntryDraft:
    net = invoice.subtotal - invoice.discount_total
    round_off = invoice.total - (net + invoice.tax_total)
    if invoice.type is SourceType.SALES_INVOICE:
        lines = [
            Line(account=acc.ACCOUNTS_RECEIVABLE, debit=invoice.total),
            Line(account=acc.SALES, credit=net),
            Line(account=acc.OUTPUT_TAX, credit=invoice.tax_total),
            _round_off(credit=round_off),
        ]
    else:
        lines = [
            Line(account=acc.PURCHASES, debit=net),
            Line(account=acc.INPUT_TAX, debit=invoice.tax_total),
            Line(account=acc.ACCOUNTS_PAYABLE, credit=invoice.total),
            _round_off(credit=-round_off),
        ]
    return _draft(invoice, invoice.date, lines)


def payment_entry(invoice: Invoice, payment: Payment) -> EntryDraft:
    """A payment settles the invoice's receivable/payable; a negative one (refund) swaps the sides."""
    settlement = acc.settlement_account(payment.method)
    amount = abs(payment.amount)
    if invoice.type is SourceType.SALES_INVOICE:
        lines = [Line(account=settlement, debit=amount), Line(account=acc.ACCOUNTS_RECEIVABLE, credit=amount)]
    else:
        lines = [Line(account=acc.ACCOUNTS_PAYABLE, debit=amount), Line(account=settlement, credit=amount)]
    if payment.amount < 0:
        lines = [line.swapped() for line in lines]
    return _draft(invoice, payment.date, lines, payment_id=payment.id)


def expense_entry(expense: Expense) -> EntryDraft:
    credit_account = acc.settlement_account(expense.payment_method) if expense.paid else acc.ACCOUNTS_PAYABLE
    lines = [
        Line(account=acc.expense_account_key(expense.category), debit=expense.amount),
        Line(account=acc.INPUT_TAX, debit=expense.tax_amount),
        Line(account=credit_account, credit=expense.amount + expense.tax_amount),
    ]
    return _draft(expense, expense.date, lines)


def _round_off(*, credit) -> Line:
    """The ≤ 0.01 difference between a total and its parts, on whichever side balances."""
    if credit >= 0:
        return Line(account=acc.ROUND_OFF, credit=credit)
    return Line(account=acc.ROUND_OFF, debit=-credit)


def _draft(document: Invoice | Expense, date, lines: list[Line], payment_id=None) -> EntryDraft:
    source = SourceRef(type=document.type, id=document.id, number=document.number,
                       payment_id=payment_id, document_date=document.date)
    kept = tuple(line for line in lines if line.debit != ZERO or line.credit != ZERO)
    return EntryDraft(vendor_id=document.vendor_id, date=date, source=source, lines=kept)


def _keep_nonzero(drafts: list[EntryDraft]) -> list[EntryDraft]:
    return [draft for draft in drafts if draft.lines]
