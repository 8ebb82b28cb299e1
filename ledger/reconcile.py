"""Decide what to write so the ledger matches the current source, never editing the past.

For each posting unit (a document, or one payment on an invoice) the ledger
holds a chain of postings and reversals. The unit's *active* postings are those
not yet reversed. Against the unit's current draft:

- same fingerprint as the active posting → nothing to do (skipped);
- different → reverse the active posting, post the draft;
- no draft any more (void, deleted, payment removed, now all zero) → reverse.

Every reversal says why it was written. While a period is closed, nothing is
booked on or before its close date: such an entry is booked the day after and
marked late; once the period is reopened, a late posting goes back to its own date.
Ids are deterministic, so two writers reaching the same decision collide on
the database's unique `_id` instead of posting twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

from ledger.entries import EntryDraft, JournalEntry, ReversalReason
from ledger.ids import posting_id, reversal_id
from ledger.periods import booking_date

WITHDRAWN_REASONS = {"void": ReversalReason.VOIDED, "cancelled": ReversalReason.CANCELLED,
                     "deleted": ReversalReason.DELETED}


class Plan(BaseModel):
    """What one document needs written: new postings and reversals."""

    model_config = ConfigDict(frozen=True)

    postings: tuple[JournalEntry, ...] = ()
    reversals: tuple[JournalEntry, ...] = ()

    @property
    def entries(self) -> tuple[JournalEntry, ...]:
        # Reversals first: the books never show old and new at once.
        return self.reversals + self.postings

    @property
    def is_empty(self) -> bool:
        return not self.postings and not self.reversals


def plan_document(drafts: Iterable[EntryDraft], existing: Iterable[JournalEntry], reversal_date: datetime,
                  withdrawn: str | None = None, closed_through: date | None = None) -> Plan:
    """The entries that bring one document's postings in line with `drafts`.

    `existing` is every entry already posted for the document (all units); reversals are
    dated `reversal_date` (the source's `updatedAt`, or the sync time); `withdrawn` is why
    the document posts nothing now (`void`, `cancelled`, `deleted`, `draft`), if it does not.
    """
    by_unit: dict[str, list[JournalEntry]] = defaultdict(list)
    for entry in existing:
        by_unit[entry.unit].append(entry)
    postings: list[JournalEntry] = []
    reversals: list[JournalEntry] = []
    wanted = {draft.unit: draft for draft in drafts}
    for unit in sorted(set(by_unit) | set(wanted)):
        history = by_unit.get(unit, [])
        active = active_postings(history)
        draft = wanted.get(unit)
        # A crash between writing a posting and its predecessor's reversal can
        # leave two active postings: keep the one that matches, reverse the rest.
        keep = next((entry for entry in active if draft is not None and entry.fingerprint == draft.fingerprint), None)
        moved = None
        if keep is not None and draft is not None and keep.date != draft.date \
                and booking_date(draft.date, closed_through) == draft.date:
            moved, keep = keep, None  # booked late while its period was closed; the period is open again
        for entry in active:
            if entry is keep:
                continue
            if entry is moved:  # cancelled where it was booked, posted again at its own date
                reversals.append(reverse(entry, entry.date, ReversalReason.MOVED))
                continue
            reason, changed = _why(entry, draft, withdrawn)
            reversals.append(reverse(entry, reversal_date, reason, changed))
        if draft is not None and keep is None:
            sequence = sum(1 for entry in history if entry.reversal_of is None) + 1
            postings.append(JournalEntry(
                id=posting_id(unit, sequence), vendor_id=draft.vendor_id, date=draft.date,
                source=draft.source, lines=draft.lines, fingerprint=draft.fingerprint,
            ))
    return Plan(postings=tuple(book(entry, closed_through) for entry in postings),
                reversals=tuple(book(entry, closed_through) for entry in reversals))


def _why(entry: JournalEntry, draft: EntryDraft | None,
         withdrawn: str | None) -> tuple[ReversalReason, tuple[str, ...]]:
    if withdrawn is not None:
        if withdrawn in WITHDRAWN_REASONS:
            return WITHDRAWN_REASONS[withdrawn], ()
        return ReversalReason.CHANGED, ("status",)
    if draft is None:
        if entry.source.payment_id is not None:
            return ReversalReason.PAYMENT_REMOVED, ()
        return ReversalReason.CHANGED, ("amounts",)  # everything it posts is zero now
    return ReversalReason.CHANGED, changed_fields(entry, draft)


def changed_fields(entry: JournalEntry, draft: EntryDraft) -> tuple[str, ...]:
    """The posting-relevant fields in which the draft differs from what `entry` was posted from."""
    before, after = entry.source.basis, draft.source.basis
    if before is not None and after is not None:
        differing = tuple(name for name in sorted(set(before) | set(after)) if before.get(name) != after.get(name))
        if differing:
            return differing
    fields: list[str] = []
    if entry.date != draft.date and entry.source.document_date != draft.source.document_date:
        fields.append("date")
    if entry.lines != draft.lines:
        fields.append("amounts")
    return tuple(fields) or ("date",)


def book(entry: JournalEntry, closed_through: date | None) -> JournalEntry:
    """The entry as booked: on its own date, or the day after the close date (late)."""
    booked = booking_date(entry.date, closed_through)
    return entry if booked == entry.date else entry.model_copy(update={"date": booked, "late": True})


def active_postings(history: Iterable[JournalEntry]) -> list[JournalEntry]:
    history = list(history)
    reversed_ids = {entry.reversal_of for entry in history if entry.reversal_of is not None}
    return [entry for entry in history if entry.reversal_of is None and entry.id not in reversed_ids]


def reverse(entry: JournalEntry, date: datetime, reason: ReversalReason | None = None,
            changed: tuple[str, ...] = ()) -> JournalEntry:
    """The mirror image of `entry`: same accounts, sides swapped, pointing back at it, saying why."""
    lines = tuple(line.swapped() for line in entry.lines)
    return JournalEntry(
        id=reversal_id(entry.id), vendor_id=entry.vendor_id, date=date, source=entry.source,
        lines=lines, fingerprint=entry.fingerprint, reversal_of=entry.id, reason=reason, changed=changed,
    )
