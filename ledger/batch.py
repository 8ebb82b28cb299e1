"""One batch of source documents → what to write, what to reject, what to count.

Pure: the flow hands in the raw documents and what the ledger already holds
for them, and gets back the entries to insert and the rejections to record.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from ledger.entries import JournalEntry
from ledger.posting import drafts_for
from ledger.reconcile import Plan, plan_document
from ledger.sources import Expense, Invoice, Rejection, SourceType
from ledger.sync_run import SyncParameters, TypeStats
from ledger.validation import read_source


@dataclass
class BatchPlan:
    plans: dict[str, Plan] = field(default_factory=dict)  # by source id (as text)
    rejections: list[Rejection] = field(default_factory=list)
    scanned: int = 0

    @property
    def entries(self) -> list[JournalEntry]:
        return [entry for plan in self.plans.values() for entry in plan.entries]

    def stats(self, inserted_ids: set[str]) -> TypeStats:
        """Counts once the entries are written: what another writer (or an earlier
        attempt of this batch) already wrote counts as skipped, not synced."""
        stats = TypeStats(scanned=self.scanned, errors=len(self.rejections))
        for plan in self.plans.values():
            postings = sum(1 for entry in plan.postings if entry.id in inserted_ids)
            reversals = sum(1 for entry in plan.reversals if entry.id in inserted_ids)
            stats.synced += postings
            stats.reversed += reversals
            if postings == 0 and reversals == 0:
                stats.skipped += 1
        return stats


def plan_batch(source_type: SourceType, raw_documents: list[dict], existing: list[JournalEntry],
               parameters: SyncParameters, base_currency: str, sync_time: datetime) -> BatchPlan:
    """Validate, post and reconcile every document of a batch against the existing entries."""
    existing_by_source: dict[str, list[JournalEntry]] = defaultdict(list)
    for entry in existing:
        existing_by_source[str(entry.source.id)].append(entry)
    batch = BatchPlan()
    for raw in raw_documents:
        document = read_source(source_type, raw, base_currency)
        if isinstance(document, (Invoice, Expense)) and not parameters.includes(document.date):
            continue  # an ISO-string date the server could not filter on
        batch.scanned += 1
        if isinstance(document, Rejection):
            batch.rejections.append(document)
            continue
        key = str(document.id)
        batch.plans[key] = plan_document(drafts_for(document), existing_by_source.get(key, ()),
                                         reversal_date=document.updated_at or sync_time)
    return batch


def plan_removed_sources(existing: list[JournalEntry], sync_time: datetime) -> list[JournalEntry]:
    """Reversals for documents gone from the source collection (hard deletes)."""
    by_source: dict[str, list[JournalEntry]] = defaultdict(list)
    for entry in existing:
        by_source[str(entry.source.id)].append(entry)
    reversals: list[JournalEntry] = []
    for entries in by_source.values():
        reversals.extend(plan_document((), entries, reversal_date=sync_time).reversals)
    return reversals



