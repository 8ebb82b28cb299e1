"""A document step: for each batch of one kind's documents, plan it, write it, checkpoint it.

Each batch is written in one transaction with its checkpoint in the run record (position,
statistics and the balances of what this attempt wrote so far), so a resumed or retried
step continues exactly after the last batch written: nothing is ever written past a
checkpoint, and nothing is counted twice.
"""

from __future__ import annotations

import logging
import os
import signal
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from flows import progress
from flows.context import SyncCancelled, SyncContext
from flows.database import get_store
from flows.pipeline import BatchPipeline
from flows.settings import get_settings
from ledger.balances import daily_movements, line_counts
from ledger.batch import BatchPlan, plan_batch, plan_removed_sources, removal_change, removed_source_entries
from ledger.chain import Head, chained
from ledger.clock import utc_now
from ledger.entries import JournalEntry
from ledger.ids import value_of_key
from ledger.kinds import SourceKind
from ledger.sources import Rejection
from ledger.store import SourceQuery, Store
from ledger.store.balances import HeldDays
from ledger.store.batches import BatchWrite, write_batch
from ledger.store.codec import balances_from_document, balances_to_document, entry_to_document
from ledger.store.runs import field
from ledger.sync_run import Progress, SyncRun, TypeStats
from ledger.verification import LedgerInconsistent, balances_of, is_balanced

log = logging.getLogger("ledger_sync.sync")

FIRST_SPLIT_FROM = 200  # documents in a step's first batch from which its head is written on its own


@dataclass
class PlannedBatch:
    """One batch, planned down to the stored documents and their places in the chain, waiting to be written."""

    plan: BatchPlan
    removal_reversals: list[JournalEntry]  # reversals of documents gone from the source (full sync)
    entries: list[JournalEntry]  # everything to write: the plan's entries, then the removal reversals
    records: list[dict[str, Any]]  # the same, as stored, chained after `expected_head`
    expected_head: Head
    new_head: Head
    posted_at: datetime
    phase: int
    last_id: Any
    documents: int


class PostedLookup:
    """What the ledger already holds for a batch of documents, found the cheapest way that is right.

    On a vendor's first sync of a kind nothing is posted: no lookups. A full sync of
    everything reads documents in `_id` order, so fetching the ledger's entries by id
    range also finds the hard-deleted documents in between, at no extra cost (ranges
    compare ids of one BSON type only: a batch of mixed types is looked up by id, and
    hard deletes are then found the slower way at the end). Otherwise: by id.
    """

    def __init__(self, store: Store, context: SyncContext, kind: SourceKind, id_types: set[str]):
        self.store = store
        self.vendor_id = context.vendor_id
        self.kind = kind
        # The noted id types answer first: asking the ledger costs SecantusDB a scan of what is posted.
        self.first_posting = not id_types and not store.entries.has_entries(context.vendor_id, kind.type)
        self.by_range = context.parameters.full and context.parameters.covers_everything

    def existing(self, ids: list[Any], previous_id: Any) -> tuple[list[JournalEntry], list[JournalEntry]]:
        """(the entries of these documents, the entries of documents gone from between them)."""
        if self.by_range and not _same_bson_type(previous_id, ids):
            self.by_range = False
        if self.first_posting:
            return [], []
        if self.by_range:
            existing = self.store.entries.in_source_range(self.vendor_id, self.kind.type, previous_id, ids[-1])
            return existing, removed_source_entries(existing, ids)
        return self.store.entries.for_sources(self.vendor_id, self.kind.type, ids), []


class DocumentStep:
    """Sync every selected document of one kind for one run."""

    def __init__(self, context: SyncContext, kind: SourceKind, run: SyncRun,
                 logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = log):
        """`run` is the run record as the step started."""
        self.context = context
        self.kind = kind
        self.logger = logger
        self.store: Store = get_store()
        self.crash_after = get_settings().ledger_crash_after_documents
        self.step_record = run.step(kind.step)
        self.recheck = run.recheck.get(kind.step, [])
        self.stats = run.sync_stats
        self.open_amount = Decimal(run.open_amounts.get(kind.step, "0"))
        self.open_change = Decimal(run.open_change.get(kind.step, "0"))
        self.delta = balances_from_document(run.ledger_delta)
        self.written = run.entries_written
        self.processed = self.step_record.processed if self.step_record.last_id is not None else 0
        self.total: int | None = None  # once counted
        self.known_accounts: set[str] = set()
        self.id_types: set[str] = set()  # BSON types of the source ids this kind has in the ledger
        self.head = Head()  # where the next planned batch goes in the chain
        self.reporter = progress.ProgressReporter(context.sync_id, context.vendor_id)
        self.cancelled = False  # set by the writer when the run record asks for it
        self.planned_any = False  # whether a batch of this step was planned (the first is split)
        self.held_days = HeldDays()  # the balances' days as this step last wrote them

    @property
    def type_stats(self) -> TypeStats:
        return self.stats.of(self.kind.step)

    def run(self) -> TypeStats:
        context = self.context
        parameters = context.parameters
        only = None if parameters.documents is None else \
            tuple(value_of_key(key) for key in parameters.documents.get(self.kind.step, ()))
        query = SourceQuery(vendor_id=context.vendor_id, kind=self.kind, date_from=parameters.start,
                            date_until=parameters.end_exclusive,
                            changed_since=None if only is not None else context.changed_since.get(self.kind.step),
                            recheck_ids=tuple(self.recheck) if only is None else (), only_ids=only)
        self.known_accounts = self.store.accounts.keys(context.vendor_id)
        self.id_types = self.store.vendors.posted_id_types(context.vendor_id, self.kind.type)
        self.head = self.store.vendors.head(context.vendor_id) or Head()
        lookup = PostedLookup(self.store, context, self.kind, self.id_types)
        previous_id = self.step_record.last_id
        remaining = query.resumed(self.step_record.phase, previous_id)
        counted: Future[int] | None = None
        with self.reporter, BatchPipeline(self.kind.step, self.write) as pipeline:
            for phase, documents in pipeline.batches(self.store.sources.batches(remaining)):
                if counted is None:
                    # Counting (for progress) costs the server about half a read. It reads the
                    # selection whole at the first batch and then waits while that one is planned:
                    # the count goes there, not in the way of the read.
                    counted = pipeline.alongside(self.store.sources.count, remaining)
                for part in self._parts(documents):
                    planned = self.plan(phase, part, lookup, previous_id)
                    self._report_start_once_counted(counted)
                    pipeline.submit(planned)
                    previous_id = planned.last_id
                    if self.cancelled:
                        break
                if self.cancelled:
                    break
        self._report_start_once_counted(counted)
        if self.cancelled:
            raise SyncCancelled()
        if only and not lookup.first_posting and not self.step_record.deletes_checked:
            self._reverse_hard_deletes(False, None, candidates=list(only))  # a watched document that is gone
        elif parameters.full and not lookup.first_posting and not self.step_record.deletes_checked:
            self._reverse_hard_deletes(lookup.by_range, previous_id)
        return self.type_stats

    def _parts(self, documents: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """A batch as it is written: the step's first one in two, a small head and the rest, so the
        writer starts on the head while the rest is planned instead of waiting for the whole batch."""
        if self.planned_any or len(documents) < FIRST_SPLIT_FROM:
            self.planned_any = True
            return [documents]
        self.planned_any = True
        head = len(documents) // 8
        return [documents[:head], documents[head:]]

    def plan(self, phase: int, documents: list[dict[str, Any]], lookup: PostedLookup, previous_id: Any) -> PlannedBatch:
        """Everything one batch needs written, down to the stored documents (on the planning thread)."""
        context = self.context
        ids = [document["_id"] for document in documents]
        existing, removed = lookup.existing(ids, previous_id)
        now = utc_now()
        plan = plan_batch(self.kind, documents, existing, context.parameters, context.base_currency, now,
                          closed_through=context.closed_through)
        reversals = plan_removed_sources(removed, now, context.closed_through)
        entries = plan.entries + reversals
        records, head = self._chained(entries, now)
        planned = PlannedBatch(plan=plan, removal_reversals=reversals, entries=entries, records=records,
                               expected_head=self.head, new_head=head, posted_at=now, phase=phase, last_id=ids[-1],
                               documents=plan.scanned)  # the selection's: not string dates outside the range
        self.head = head
        return planned

    def _chained(self, entries: list[JournalEntry], now: datetime) -> tuple[list[dict[str, Any]], Head]:
        unbalanced = [entry.id for entry in entries if not is_balanced(entry)]
        if unbalanced:  # the posting rules never produce one; refuse rather than corrupt the books
            raise LedgerInconsistent(f"refusing to post unbalanced entries: {', '.join(unbalanced[:5])}")
        return chained([entry_to_document(entry, self.context.sync_id, now) for entry in entries], self.head)

    def _report_start_once_counted(self, counted: Future[int] | None) -> None:
        """Once the count is in, the step reports its start (before its first write); None: the
        selection was empty."""
        if self.total is None:
            self.total = self.processed + (counted.result() if counted is not None else 0)
            self._report(force=True)

    def write(self, job: PlannedBatch) -> None:
        """Runs on the writer thread: the batch and its checkpoint, in one transaction."""
        self.processed += job.documents
        stats = job.plan.stats() + TypeStats(reversed=len(job.removal_reversals),
                                             late=sum(1 for entry in job.removal_reversals if entry.late))
        self._count(job.entries, stats)
        self.open_amount += job.plan.open_amount
        self.open_change += job.plan.open_change + removal_change(job.removal_reversals, self.kind.side)
        step = self.kind.step
        run = self._write(job.entries, job.records, job.expected_head, job.new_head, job.posted_at,
                          job.plan.rejections, {
                              field("steps", step, "phase"): job.phase, field("steps", step, "last_id"): job.last_id,
                              field("steps", step, "processed"): self.processed,
                              field("steps", step, "total"): self.total, field("progress"): self._progress(),
                              field("heartbeat_at"): job.posted_at})
        for rejection in job.plan.rejections:
            self._log_rejection(rejection)
        self._crash_if_told()
        if run is not None and run.cancel_requested:
            self.cancelled = True
        self._report()

    def _write(self, entries: list[JournalEntry], records: list[dict[str, Any]], expected: Head, new: Head,
               posted_at: datetime, rejections: list[Rejection], checkpoint: dict[str, Any]) -> SyncRun | None:
        accounts = {line.account for entry in entries for line in entry.lines} - self.known_accounts
        id_types = {type(entry.source.id).__name__ for entry in entries} - self.id_types
        run = write_batch(self.store, BatchWrite(
            vendor_id=self.context.vendor_id, guard=self.context.guard, checkpoint={**checkpoint, **self._totals()},
            entries=records, expected_head=expected, new_head=new, movements=daily_movements(entries),
            lines=line_counts(entries),
            new_accounts=accounts, rejections=rejections, source_type=self.kind.type, new_id_types=id_types,
            posted_at=posted_at, held_days=self.held_days))
        self.known_accounts |= accounts
        self.id_types |= id_types
        return run

    def _crash_if_told(self) -> None:
        """Test hook (`LEDGER_CRASH_AFTER_DOCUMENTS`): die hard once that many documents are written."""
        if self.crash_after is not None and self.processed >= self.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def _reverse_hard_deletes(self, by_range: bool, last_id: Any, candidates: list[Any] | None = None) -> None:
        """Reverse what the ledger holds for documents gone from the source: a full sync's (of every
        document the ledger holds), or a watched one's (of `candidates`)."""
        store, context, kind = self.store, self.context, self.kind
        gone = self._gone(by_range, last_id, candidates)
        for existing in gone:
            now = utc_now()
            reversals = plan_removed_sources(existing, now, context.closed_through)
            if not reversals:
                continue
            records, head = self._chained(reversals, now)
            self._count(reversals, TypeStats(reversed=len(reversals), late=sum(1 for e in reversals if e.late)))
            self.open_change += removal_change(reversals, kind.side)
            self._write(reversals, records, self.head, head, now, [], {field("heartbeat_at"): now})
            self.head = head
        store.runs.update(context.guard, {**self._totals(), field("steps", kind.step, "deletes_checked"): True})

    def _gone(self, by_range: bool, last_id: Any, candidates: list[Any] | None) -> list[list[JournalEntry]]:
        """The entries of documents gone from the source collection, a batch of documents at a time."""
        store, vendor, kind = self.store, self.context.vendor_id, self.kind
        if candidates is not None:
            missing = store.sources.missing_ids(kind, vendor, candidates)
            return [store.entries.for_sources(vendor, kind.type, missing)] if missing else []
        if by_range and last_id is not None:
            # Ranges only reached ids of the type read: enough unless the ledger holds others.
            by_range = self.id_types <= {type(last_id).__name__}
        if by_range:  # the stretch of ids after the last document read
            return [store.entries.in_source_range(vendor, kind.type, last_id, None)]
        gone = []  # check every document the ledger holds (for the date range, if any)
        for ids in store.entries.posted_source_id_batches(vendor, kind.type, self.context.parameters.start,
                                                          self.context.parameters.end_exclusive):
            missing = store.sources.missing_ids(kind, vendor, ids)
            if missing:
                gone.append(store.entries.for_sources(vendor, kind.type, missing))
        return gone

    def _count(self, posted: list[JournalEntry], stats: TypeStats) -> None:
        """Add what this run writes to its statistics and to the balances of what this attempt wrote."""
        self.stats = self.stats.with_type(self.kind.step, self.type_stats + stats)
        self.delta = self.delta.plus(balances_of(posted))
        self.written += len(posted)

    def _totals(self) -> dict[str, Any]:
        step = self.kind.step
        return {field("stats"): self.stats.as_document(), field("errors_count"): self.stats.total.errors,
                field("ledger_delta"): balances_to_document(self.delta), field("entries_written"): self.written,
                f"{field('open_amounts')}.{step}": str(self.open_amount),
                f"{field('open_change')}.{step}": str(self.open_change)}

    def _progress(self) -> Progress:
        total = self.total or 0
        return progress.progress_at(self.kind.step, self.processed, total,
                                    f"{self.kind.label}: {self.processed:,} of {total:,} documents")

    def _report(self, force: bool = False) -> None:
        self.reporter.update(self.reporter.event(self._progress(), self.stats.total), force=force)

    def _log_rejection(self, rejection: Rejection) -> None:
        self.logger.warning("rejected vendor=%s sync=%s %s=%s field=%s: %s", self.context.vendor_id,
                            self.context.sync_id, rejection.type, rejection.id, rejection.field, rejection.reason,
                            extra={"document_id": rejection.id})


def _same_bson_type(previous_id: Any, ids: list[Any]) -> bool:
    kinds = {type(source_id) for source_id in ids} | ({type(previous_id)} if previous_id is not None else set())
    return len(kinds) == 1
