"""Purchase invoices and the payments made to suppliers on them (SPEC §2, §3).

| event | debit | credit |
|---|---|---|
| invoice, dated invoiceDate | purchases = subtotal − discountTotal; input_tax = taxTotal | accounts_payable = total |
| supplier payment | accounts_payable = amount | cash/bank = amount |
| supplier refund (amount < 0) | cash/bank = abs(amount) | accounts_payable = abs(amount) |
"""

from __future__ import annotations

from functools import partial

from ledger import accounts as acc
from ledger.entries import EntryDraft, Line
from ledger.kinds.invoices import Invoice, open_amount, payment_basis, read_invoice
from ledger.kinds.registry import Side, SourceKind, register
from ledger.posting import draft, round_off, settlement

TYPE = "purchase_invoice"


def drafts(invoice: Invoice) -> list[EntryDraft]:
    purchase = draft(invoice, invoice.date, [
        Line(account=acc.PURCHASES, debit=invoice.net),
        Line(account=acc.INPUT_TAX, debit=invoice.tax_total),
        Line(account=acc.ACCOUNTS_PAYABLE, credit=invoice.total),
        round_off(credit=-invoice.round_off),
    ], basis=invoice.basis)
    payments = [draft(invoice, payment.date, settlement(payment.amount, debit=acc.ACCOUNTS_PAYABLE,
                                                        credit=acc.settlement_account(payment.method)),
                      payment_id=payment.id, basis=payment_basis(payment))
                for payment in invoice.payments]
    return [purchase, *payments]


PURCHASE_INVOICE = register(SourceKind(
    type=TYPE, step="purchase_invoices", label="Purchase invoices", noun="Purchase invoice",
    collection="purchaseinvoices", date_field="invoiceDate", side=Side.PAYABLE, party_label="supplier",
    read=partial(read_invoice, TYPE, "billNumber", "supplier"), drafts=drafts, open_amount=open_amount, order=20,
))
