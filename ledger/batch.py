"""One batch of source documents → what to write, what to reject, what to count.

Pure: the flow hands in the raw documents and what the ledger already holds
for them, and gets back the entries to insert and the rejections to record.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ledger.entries import ZERO, JournalEntry
from ledger.ids import id_key
from ledger.kinds import Side, SourceKind
from ledger.parsing import InvalidValue, to_utc_datetime
from ledger.reconcile import Plan, plan_document
from ledger.sources import Rejection, Withdrawn
from ledger.sync_run import SyncParameters, TypeStats


@dataclass
class BatchPlan:
    plans: dict[str, Plan] = field(default_factory=dict)  # by source id key
    rejections: list[Rejection] = field(default_factory=list)
    scanned: int = 0
    # What the batch's documents leave open on their kind's control account; a rejected
    # document counts as the ledger holds it.
    open_amount: Decimal = ZERO
    # How much the sync moves that control account for these documents: what they leave
    # open after it less what the ledger held for them.
    open_change: Decimal = ZERO

    @property
    def entries(self) -> list[JournalEntry]:
        return [entry for plan in self.plans.values() for entry in plan.entries]

    def stats(self) -> TypeStats:
        """Counts of a batch once written (a batch is written whole or not at all)."""
        stats = TypeStats(scanned=self.scanned, errors=len(self.rejections))
        for plan in self.plans.values():
            stats.synced += len(plan.postings)
            stats.reversed += len(plan.reversals)
            stats.late += sum(1 for entry in plan.entries if entry.late)
            if plan.is_empty:
                stats.skipped += 1
        return stats


def control_balance(entries: list[JournalEntry], side: Side) -> Decimal:
    """What these entries leave open on a side's control account."""
    account = side.control_account
    return side.open_balance(sum((line.debit - line.credit for entry in entries for line in entry.lines
                                  if line.account == account), ZERO))


def plan_batch(kind: SourceKind, raw_documents: list[dict[str, Any]], existing: list[JournalEntry],
               parameters: SyncParameters, base_currency: str, sync_time: datetime,
               closed_through: date | None = None) -> BatchPlan:
    """Validate, post and reconcile every document of a batch against the existing entries
    (nothing is booked on or before `closed_through`)."""
    existing_by_source = _by_source(existing)
    batch = BatchPlan()
    for raw in raw_documents:
        if not _in_date_range(kind, raw, parameters):
            continue  # an ISO-string date the server could not filter on
        document = kind.read(raw, base_currency)
        batch.scanned += 1
        key = id_key(document.id)
        held = existing_by_source.get(key, [])
        before = control_balance(held, kind.side)
        if isinstance(document, Rejection):
            batch.rejections.append(document)
            after = before
        else:
            after = ZERO if isinstance(document, Withdrawn) else kind.open_amount(document)
            withdrawn = document.reason if isinstance(document, Withdrawn) else None
            drafts = [] if isinstance(document, Withdrawn) else kind.drafts_of(document)
            batch.plans[key] = plan_document(drafts, held, reversal_date=document.updated_at or sync_time,
                                             withdrawn=withdrawn, closed_through=closed_through)
        batch.open_amount += after
        batch.open_change += after - before
    return batch


def _in_date_range(kind: SourceKind, raw: dict[str, Any], parameters: SyncParameters) -> bool:
    """Whether a document is in the run's date range by its own date, whatever that date's
    BSON type and whether the document is valid or posts at all (a void or invalid
    document outside the range is no more read than a posting one). A date that cannot
    be read is let through, for validation to report."""
    if parameters.covers_everything:
        return True
    try:
        return parameters.includes(to_utc_datetime(raw.get(kind.date_field)))
    except InvalidValue:
        return True


def removed_source_entries(existing: list[JournalEntry], present_ids: list[Any]) -> list[JournalEntry]:
    """The entries of documents the ledger knows but the source batch no longer has."""
    present = {id_key(source_id) for source_id in present_ids}
    return [entry for entry in existing if id_key(entry.source.id) not in present]


def removal_change(reversals: list[JournalEntry], side: Side) -> Decimal:
    """How much reversing documents gone from the source moves their control account."""
    return control_balance(reversals, side)


def plan_removed_sources(existing: list[JournalEntry], sync_time: datetime,
                         closed_through: date | None = None) -> list[JournalEntry]:
    """Reversals for documents gone from the source collection (hard deletes)."""
    reversals: list[JournalEntry] = []
    for entries in _by_source(existing).values():
        reversals.extend(plan_document((), entries, reversal_date=sync_time, withdrawn="deleted",
                                       closed_through=closed_through).reversals)
    return reversals


def _by_source(entries: list[JournalEntry]) -> dict[str, list[JournalEntry]]:
    by_source: dict[str, list[JournalEntry]] = defaultdict(list)
    for entry in entries:
        by_source[id_key(entry.source.id)].append(entry)
    return by_source
