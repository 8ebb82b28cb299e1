"""Source documents as the ledger understands them, after reading and validation.

What every kind of document has in common: a document that posts (`SourceDocument`,
extended by each kind in `ledger.kinds`), one that posts nothing now (`Withdrawn`), and
one that failed validation (`Rejection`). Money is `Decimal` at cents, dates are aware
UTC datetimes; turning the raw shapes of SPEC §2 into these is each kind's `read`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)


class Party(Record):
    """Who a document is with: a customer, a supplier, or (for an expense) its category."""

    id: str | None = None
    name: str


class SourceDocument(Record):
    """A document that posts. `type` is its kind (`ledger.kinds`), as entries store it."""

    type: str
    id: Any
    vendor_id: str
    number: str | None
    date: datetime
    updated_at: datetime | None
    party: Party | None = None


class Withdrawn(Record):
    """A document that posts nothing now (draft, void, cancelled, deleted).

    Anything it posted before is reversed.
    """

    type: str
    id: Any
    vendor_id: str
    number: str | None
    reason: str
    updated_at: datetime | None


class Rejection(Record):
    """Why a document failed validation: it is not posted, and it is not lost."""

    type: str
    id: Any
    vendor_id: str
    number: str | None
    field: str
    reason: str
    # The document's date and amount as it states them (possibly the invalid values): invoice numbers
    # repeat, so these tell two rejected documents apart.
    date: str | None = None
    amount: str | None = None


ReadDocument = SourceDocument | Withdrawn | Rejection
