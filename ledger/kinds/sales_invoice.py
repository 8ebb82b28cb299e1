"""Sales invoices and the customer payments on them (SPEC §2, §3).

| event | debit | credit |
|---|---|---|
| invoice, dated invoiceDate | accounts_receivable = total | sales = subtotal − discountTotal; output_tax = taxTotal |
| customer payment, dated payment.date | cash/bank = amount | accounts_receivable = amount |
| customer refund (amount < 0) | accounts_receivable = abs(amount) | cash/bank = abs(amount) |
"""

from __future__ import annotations

from functools import partial

from ledger import accounts as acc
from ledger.entries import EntryDraft, Line
from ledger.kinds.invoices import Invoice, open_amount, payment_basis, read_invoice
from ledger.kinds.registry import Side, SourceKind, register
from ledger.posting import draft, round_off, settlement

TYPE = "sales_invoice"


def drafts(invoice: Invoice) -> list[EntryDraft]:
    sale = draft(invoice, invoice.date, [
        Line(account=acc.ACCOUNTS_RECEIVABLE, debit=invoice.total),
        Line(account=acc.SALES, credit=invoice.net),
        Line(account=acc.OUTPUT_TAX, credit=invoice.tax_total),
        round_off(credit=invoice.round_off),
    ], basis=invoice.basis)
    receipts = [draft(invoice, payment.date, settlement(payment.amount, debit=acc.settlement_account(payment.method),
                                                        credit=acc.ACCOUNTS_RECEIVABLE),
                      payment_id=payment.id, basis=payment_basis(payment))
                for payment in invoice.payments]
    return [sale, *receipts]


SALES_INVOICE = register(SourceKind(
    type=TYPE, step="sales_invoices", label="Sales invoices", noun="Sales invoice", collection="salesinvoices",
    date_field="invoiceDate", side=Side.RECEIVABLE, party_label="customer",
    read=partial(read_invoice, TYPE, "invoiceNumber", "customer"), drafts=drafts, open_amount=open_amount, order=10,
))
