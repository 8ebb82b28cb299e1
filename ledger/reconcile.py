"""Decide what to write so the ledger matches the current source, never editing the past.

For each posting unit (a document, or one payment on an invoice) the ledger
holds a chain of postings and reversals. The unit's *active* postings are those
not yet reversed. Against the unit's current draft:

- same fingerprint as the active posting → nothing to do (skipped);
- different → reverse the active posting, post the draft;
- no draft any more (void, deleted, payment removed, now all zero) → reverse.

Ids are deterministic, so two writers reaching the same decision collide on
the database's unique `_id` instead of posting twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from ledger.entries import EntryDraft, JournalEntry
from ledger.ids import posting_id, reversal_id


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


def plan_document(drafts: Iterable[EntryDraft], existing: Iterable[JournalEntry], reversal_date: datetime) -> Plan:
    """The entries that bring one document's postings in line with `drafts`.

    `existing` is every entry already posted for the document (all units);
    reversals are dated `reversal_date` (the source's `updatedAt`, or the sync time).
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
        reversals.extend(reverse(entry, reversal_date) for entry in active if entry is not keep)
        if draft is not None and keep is None:
            sequence = sum(1 for entry in history if entry.reversal_of is None) + 1
            postings.append(JournalEntry(
                id=posting_id(unit, sequence), vendor_id=draft.vendor_id, date=draft.date,
                source=draft.source, lines=draft.lines, fingerprint=draft.fingerprint,
            ))
    return Plan(postings=tuple(postings), reversals=tuple(reversals))


def active_postings(history: Iterable[JournalEntry]) -> list[JournalEntry]:
    history = list(history)
    reversed_ids = {entry.reversal_of for entry in history if entry.reversal_of is not None}
    return [entry for entry in history if entry.reversal_of is None and entry.id not in reversed_ids]


def reverse(entry: JournalEntry, date: datetime) -> JournalEntry:
    """The mirror image of `entry`: same accounts, sides swapped, pointing back at it."""
    lines = tuple(line.swapped() for line in entry.lines)
    return JournalEntry(
        id=reversal_id(entry.id), vendor_id=entry.vendor_id, date=date, source=entry.source,
        lines=lines, fingerprint=entry.fingerprint, reversal_of=entry.id,
    )
