"""Journal entries: the immutable records of the ledger.

An entry belongs to a *posting unit*: one source document, or one payment on
an invoice. Entry ids are deterministic (`ledger.ids`: unit + sequence number,
or the reversed entry's id + `/reversal`), so the database's unique `_id` makes
a second copy of an entry impossible, whoever writes it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from ledger.ids import unit_key
from ledger.sources import Party

ZERO = Decimal("0.00")


class Line(BaseModel):
    model_config = ConfigDict(frozen=True)

    account: str
    debit: Decimal = ZERO
    credit: Decimal = ZERO

    def swapped(self) -> Line:
        return Line(account=self.account, debit=self.credit, credit=self.debit)


class SourceRef(BaseModel):
    """Ties an entry to what it was posted from: vendor, type and `_id`, never the number.

    `party` (customer, supplier, expense category) is what the reports group by, and
    `basis` the posting-relevant values the entry was posted from (a reversal of a
    changed document names the ones that changed); neither is part of the fingerprint."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    type: str
    id: Any
    number: str | None = None
    payment_id: Any = None
    document_date: datetime | None = None
    party: Party | None = None
    basis: dict[str, str] | None = None


def unit_of(vendor_id: str, source: SourceRef) -> str:
    return unit_key(vendor_id, source.type, source.id, source.payment_id)


class EntryDraft(BaseModel):
    """What a posting unit should currently have in the ledger, before it gets an id."""

    model_config = ConfigDict(frozen=True)

    vendor_id: str
    date: datetime
    source: SourceRef
    lines: tuple[Line, ...]

    @property
    def unit(self) -> str:
        return unit_of(self.vendor_id, self.source)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.date, self.lines)


class ReversalReason(StrEnum):
    VOIDED = "voided"
    CANCELLED = "cancelled"
    DELETED = "deleted"
    CHANGED = "changed"
    PAYMENT_REMOVED = "payment removed"
    MOVED = "moved out of a closed period"  # a late entry posted again at its own date once reopened


class JournalEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    vendor_id: str
    date: datetime  # when it is booked: its own date, or the day after a closed period (then `late`)
    source: SourceRef
    lines: tuple[Line, ...]
    fingerprint: str  # of the date the rules gave it, so a late entry still matches its draft
    reversal_of: str | None = None
    reason: ReversalReason | None = None  # why a reversal was written
    changed: tuple[str, ...] = ()  # for a `changed` reversal: the posting-relevant fields that changed
    late: bool = False
    sync_id: str | None = None  # the sync that posted it, once it is in the ledger

    @property
    def unit(self) -> str:
        return unit_of(self.vendor_id, self.source)

    @property
    def total_debit(self) -> Decimal:
        return sum((line.debit for line in self.lines), ZERO)

    @property
    def total_credit(self) -> Decimal:
        return sum((line.credit for line in self.lines), ZERO)


def fingerprint(date: datetime, lines: tuple[Line, ...]) -> str:
    """The posting-relevant content of an entry: its date and its lines.

    Computed from normalized values, so the same document in other BSON types,
    with a newer `updatedAt` or an extra field has the same fingerprint.
    """
    text = date.strftime("%Y-%m-%dT%H:%M:%S.") + f"{date.microsecond // 1000:03d}" + ";" + ";".join(
        f"{line.account}:{line.debit}:{line.credit}" for line in lines
    )
    return hashlib.sha1(text.encode()).hexdigest()[:20]
