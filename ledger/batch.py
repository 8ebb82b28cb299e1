"""One batch of source documents → what to write, what to reject, what to count.

Pure: the flow hands in the raw documents and what the ledger already holds
for them, and gets back the entries to insert and the rejections to record.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
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
    # Entries this same sync wrote in an attempt that failed before its checkpoint
    # (a retried task, a resumed run): already posted, still this sync's work.
    earlier: dict[str, list[JournalEntry]] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    scanned: int = 0
    # What the batch's documents leave open on their kind's control account; a rejected
    # document counts as the ledger holds it.
    open_amount: Decimal = ZERO
    # How much the sync moves that control account for these documents: what they leave
    # open after it less what the ledger held for them without this sync's own entries.
    open_change: Decimal = ZERO

    @property
    def entries(self) -> list[JournalEntry]:
        return [entry for plan in self.plans.values() for entry in plan.entries]

    def stats(self, inserted_ids: set[str]) -> TypeStats:
        """Counts once the entries are written: what another writer (or an earlier
        attempt of this batch) already wrote counts as skipped, not synced."""
        stats = TypeStats(scanned=self.scanned, errors=len(self.rejections))
        for key, plan in self.plans.items():
            earlier = self.earlier.get(key, [])
            postings = sum(1 for entry in plan.postings if entry.id in inserted_ids)
            postings += sum(1 for entry in earlier if entry.reversal_of is None)
            reversals = sum(1 for entry in plan.reversals if entry.id in inserted_ids)
            reversals += sum(1 for entry in earlier if entry.reversal_of is not None)
            stats.synced += postings
            stats.reversed += reversals
            if postings == 0 and reversals == 0:
                stats.skipped += 1
        return stats


def control_balance(entries: list[JournalEntry], side: Side) -> Decimal:
    """What these entries leave open on a side's control account."""
    account = side.control_account
    return side.open_balance(sum((line.debit - line.credit for entry in entries for line in entry.lines
                                  if line.account == account), ZERO))


def plan_batch(kind: SourceKind, raw_documents: list[dict[str, Any]], existing: list[JournalEntry],
               parameters: SyncParameters, base_currency: str, sync_time: datetime,
               sync_id: str | None = None) -> BatchPlan:
    """Validate, post and reconcile every document of a batch against the existing entries
    (`sync_id` is the sync doing it, to recognise what it already wrote)."""
    existing_by_source = _by_source(existing)
    batch = BatchPlan()
    for raw in raw_documents:
        if not _in_date_range(kind, raw, parameters):
            continue  # an ISO-string date the server could not filter on
        document = kind.read(raw, base_currency)
        batch.scanned += 1
        key = id_key(document.id)
        held = existing_by_source.get(key, [])
        before = control_balance([entry for entry in held if sync_id is None or entry.sync_id != sync_id], kind.side)
        if isinstance(document, Rejection):
            batch.rejections.append(document)
            after = control_balance(held, kind.side)
        else:
            after = ZERO if isinstance(document, Withdrawn) else kind.open_amount(document)
            if sync_id is not None:
                batch.earlier[key] = [entry for entry in held if entry.sync_id == sync_id]
            drafts = [] if isinstance(document, Withdrawn) else kind.drafts_of(document)
            batch.plans[key] = plan_document(drafts, held, reversal_date=document.updated_at or sync_time)
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


def removal_change(removed: list[JournalEntry], side: Side, sync_id: str) -> Decimal:
    """How much reversing documents gone from the source moves their control account: all
    they held without this sync's own entries goes (what it already reversed is its own)."""
    return -control_balance([entry for entry in removed if entry.sync_id != sync_id], side)


def plan_removed_sources(existing: list[JournalEntry], sync_time: datetime) -> list[JournalEntry]:
    """Reversals for documents gone from the source collection (hard deletes)."""
    reversals: list[JournalEntry] = []
    for entries in _by_source(existing).values():
        reversals.extend(plan_document((), entries, reversal_date=sync_time).reversals)
    return reversals


def _by_source(entries: list[JournalEntry]) -> dict[str, list[JournalEntry]]:
    by_source: dict[str, list[JournalEntry]] = defaultdict(list)
    for entry in entries:
        by_source[id_key(entry.source.id)].append(entry)
    return by_source
