"""What the posting rules of every kind are built from (SPEC §3).

Each kind (`ledger.kinds`) states its rows of the posting table with these: a draft
of one posting unit dated as the rule says, a refund that swaps the sides, and the
round-off of a total that differs from its parts by at most a cent. Zero lines are
left out, and an entry whose lines are all zero is not posted.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from ledger import accounts as acc
from ledger.chain import iso_millis
from ledger.entries import ZERO, EntryDraft, Line, SourceRef
from ledger.sources import SourceDocument


def draft(document: SourceDocument, date: datetime, lines: list[Line], payment_id: Any = None,
          basis: dict[str, Any] | None = None) -> EntryDraft:
    """One posting unit's entry as the document wants it now (zero lines left out). `basis`: the
    posting-relevant values it comes from, by the names the app's documents use."""
    source = SourceRef(type=document.type, id=document.id, number=document.number, payment_id=payment_id,
                       document_date=document.date, party=document.party,
                       basis=None if basis is None else {name: _text(value) for name, value in basis.items()})
    kept = tuple(line for line in lines if line.debit != ZERO or line.credit != ZERO)
    return EntryDraft(vendor_id=document.vendor_id, date=date, source=source, lines=kept)


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return iso_millis(value)
    return "" if value is None else str(value)


def settlement(amount: Decimal, debit: str, credit: str) -> list[Line]:
    """Money moving from `credit` to `debit`; a negative amount (a refund) moves it back."""
    lines = [Line(account=debit, debit=abs(amount)), Line(account=credit, credit=abs(amount))]
    return [line.swapped() for line in lines] if amount < 0 else lines


def round_off(credit: Decimal) -> Line:
    """The ≤ 0.01 difference between a total and its parts, on whichever side balances."""
    if credit >= 0:
        return Line(account=acc.ROUND_OFF, credit=credit)
    return Line(account=acc.ROUND_OFF, debit=-credit)
