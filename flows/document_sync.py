"""The body of the three document steps: read a batch, plan it, write it, checkpoint.

Reading and planning batch k+1 overlaps with writing batch k (a writer thread;
pymongo releases the GIL while it waits on the server), so the sync runs close
to the database's own write speed. The writer applies batches strictly in
order, and each batch ends with one checkpoint update (position, statistics and
the balances of what the run wrote so far), so a resumed or retried step
continues after the last batch whose checkpoint landed; anything written past
it is recognised as this run's own (deterministic ids, `syncId`) and counted once.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import signal
import threading
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from flows import progress
from flows.database import get_store
from flows.settings import get_settings
from ledger.batch import BatchPlan, plan_batch, plan_removed_sources, removal_change, removed_source_entries
from ledger.entries import JournalEntry
from ledger.sources import SYNC_TYPES, Rejection
from ledger.store import (
    LedgerStore, SourceQuery, balances_from_document, balances_to_document, entry_to_document, utc_now,
)
from ledger.sync_run import STEP_LABELS, SyncStats, TypeStats
from ledger.verification import balances_of, is_balanced

log = logging.getLogger("ledger_sync.sync")
T = TypeVar("T")


class SyncCancelled(Exception):
    pass


class LedgerInconsistent(Exception):
    """The books fail verification: never retried, the run fails with the reason."""


@dataclass
class _Write:
    """One batch, planned, waiting to be written."""

    plan: BatchPlan
    removed: list[JournalEntry]  # entries of documents gone from the source (full sync)
    removal_reversals: list[JournalEntry]  # ... and their reversals
    entries: list[JournalEntry]  # everything to insert: the plan's entries, then the removal reversals
    records: list[dict]  # the same, as stored: built while the batch before is written
    posted_at: datetime
    earlier: list[JournalEntry]  # what this run already wrote for these documents before an interruption
    phase: int
    last_id: Any
    documents: int


class _Writer:
    """Writes planned batches in order on one background thread."""

    def __init__(self, step: DocumentStep):
        self.step = step
        self.jobs: queue.Queue[_Write | None] = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"writer-{step.sync_type}", daemon=True)
        self.thread.start()

    def submit(self, job: _Write) -> None:
        self._raise()
        self.jobs.put(job)
        self._raise()

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join()
        self._raise()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if self.error is None:
                try:
                    self.step.write(job)
                except BaseException as error:  # noqa: BLE001 - handed to the step's thread
                    self.error = error


class DocumentStep:
    """Sync every selected document of one type for one run."""

    def __init__(self, context, sync_type: str, run: dict, logger: logging.Logger | logging.LoggerAdapter = log):
        """`run` is the run record as the step started."""
        self.context = context
        self.sync_type = sync_type
        self.source_type = SYNC_TYPES[sync_type]
        self.logger = logger
        self.store: LedgerStore = get_store()
        self.crash_after = get_settings().ledger_crash_after_documents
        self.step_record = run["steps"][sync_type]
        self.recheck = run.get("recheck", {}).get(sync_type, [])
        self.stats = SyncStats.from_document(run["stats"])
        self.open_amount = Decimal(run.get("openAmounts", {}).get(sync_type, "0"))
        self.open_change = Decimal(run.get("openChange", {}).get(sync_type, "0"))
        self.delta = balances_from_document(run.get("ledgerDelta", {}))
        self.written = run.get("entriesWritten", 0)
        self.processed = self.step_record.get("processed", 0) if self.step_record.get("lastId") is not None else 0
        self.total: int | None = None  # once counted
        self.known_accounts: set[str] = set()
        self.id_types: set[str] = set()  # BSON types of the source ids this type has in the ledger
        self.reporter = progress.ProgressReporter(context.sync_id, context.vendor_id)
        self.cancelled = False  # set by the writer when the run record asks for it

    @property
    def type_stats(self) -> TypeStats:
        return getattr(self.stats, self.sync_type)

    def run(self) -> TypeStats:
        context = self.context
        parameters = context.parameters
        query = SourceQuery(vendor_id=context.vendor_id, source_type=self.source_type, date_from=parameters.start,
                            date_until=parameters.end_exclusive, changed_since=context.changed_since.get(self.sync_type),
                            recheck_ids=tuple(self.recheck))
        self.known_accounts = self.store.known_accounts(context.vendor_id)
        self.id_types = self.store.posted_id_types(context.vendor_id, self.source_type)
        # The vendor's first sync of this type: nothing posted to reconcile with or to reverse,
        # so no lookups (a run that wrote entries before an interruption has their id types noted).
        # The noted types answer first: asking the ledger costs SecantusDB a scan of what is posted.
        first_posting = not self.id_types and not self.store.has_entries(context.vendor_id, self.source_type)
        # A full sync of everything reads every document in `_id` order, so fetching the
        # ledger's entries by id range finds hard-deleted documents at no extra cost.
        by_range = parameters.full and parameters.covers_everything
        previous_id = self.step_record.get("lastId")
        resume_at = SourceQuery(**{**query.__dict__, "after_id": previous_id,
                                   "phase": self.step_record.get("phase", 0)})
        with self.reporter, _rare_cycle_collection(), ThreadPoolExecutor(1, thread_name_prefix="count") as counter:
            # Counting (for progress) costs the server about half a read: overlap it with the first batch.
            counted = counter.submit(self.store.count_sources, resume_at)
            writer = _Writer(self)
            try:
                for phase, documents in _read_ahead(self.store.source_batches(resume_at)):
                    ids = [document["_id"] for document in documents]
                    if by_range and not _same_bson_type(previous_id, ids):
                        # A range query only compares ids of one BSON type: look these up by id,
                        # and find hard deletes the slower way at the end.
                        by_range = False
                    if first_posting:
                        existing, removed = [], []
                    elif by_range:
                        existing = self.store.entries_in_source_range(context.vendor_id, self.source_type,
                                                                      previous_id, ids[-1])
                        removed = removed_source_entries(existing, ids)
                    else:
                        existing = self.store.entries_for_sources(context.vendor_id, self.source_type, ids)
                        removed = []
                    now = utc_now()
                    plan = plan_batch(self.source_type, documents, existing, parameters, context.base_currency,
                                      now, sync_id=context.sync_id)
                    reversals = plan_removed_sources(removed, now)
                    entries = plan.entries + reversals
                    self._report_start_once_counted(counted)
                    writer.submit(_Write(plan=plan, removed=removed, removal_reversals=reversals, entries=entries,
                                         records=[entry_to_document(entry, context.sync_id, now) for entry in entries],
                                         posted_at=now, earlier=self._own(existing), phase=phase, last_id=ids[-1],
                                         documents=len(documents)))
                    previous_id = ids[-1]
                    if self.cancelled:
                        break
            finally:
                writer.close()
            self._report_start_once_counted(counted)
            if self.cancelled:
                raise SyncCancelled()
            if parameters.full and not first_posting and not self.step_record.get("deletesChecked"):
                self._reverse_hard_deletes(by_range, previous_id)
        return self.type_stats

    def _report_start_once_counted(self, counted: Future) -> None:
        """Once the count is in, the step reports its start (before its first write)."""
        if self.total is None:
            self.total = self.processed + counted.result()
            self._report(force=True)

    def write(self, job: _Write) -> None:
        """Runs on the writer thread: accounts, entries, rejections, then the checkpoint."""
        store, context = self.store, self.context
        now = job.posted_at
        entries = job.entries
        self._open_accounts(entries)
        written = self._insert(entries, now, job.records)
        store.record_rejections(context.sync_id, job.plan.rejections, now)
        for rejection in job.plan.rejections:
            self._log_rejection(rejection)
        self.processed += job.documents
        if self.crash_after is not None and self.processed >= self.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)  # test hook: die after writing, before the checkpoint
        gone_ids = {entry.id for entry in job.removed}
        removed_earlier = [entry for entry in job.earlier if entry.reversal_of in gone_ids]
        batch_stats = job.plan.stats(written) + TypeStats(
            reversed=sum(1 for entry in job.removal_reversals if entry.id in written) + len(removed_earlier))
        self._count([entry for entry in entries if entry.id in written] + job.earlier, batch_stats)
        self.open_amount += job.plan.open_amount
        self.open_change += job.plan.open_change + removal_change(job.removed, self.source_type, context.sync_id)
        run = store.update_run(context.sync_id, {
            f"steps.{self.sync_type}.phase": job.phase, f"steps.{self.sync_type}.lastId": job.last_id,
            f"steps.{self.sync_type}.processed": self.processed, f"steps.{self.sync_type}.total": self.total,
            f"openAmounts.{self.sync_type}": str(self.open_amount), f"openChange.{self.sync_type}": str(self.open_change),
            **self._totals(), "progress": progress.public(self._snapshot()), "heartbeatAt": now,
        })
        if run.get("cancelRequested"):
            self.cancelled = True
        self._report()

    def _reverse_hard_deletes(self, by_range: bool, last_id: Any) -> None:
        """Full sync: reverse what the ledger holds for documents gone from the source."""
        store, context = self.store, self.context
        now = utc_now()
        if by_range and last_id is not None:
            # Ranges only reached ids of the type read: enough unless the ledger holds others.
            by_range = self.id_types <= {type(last_id).__name__}
        if by_range:  # the stretch of ids after the last document read
            gone = [store.entries_in_source_range(context.vendor_id, self.source_type, last_id, None)]
        else:  # check every document the ledger holds (for the date range, if any)
            gone = []
            for ids in store.posted_source_id_batches(self.source_type, context.vendor_id, context.parameters.start,
                                                      context.parameters.end_exclusive):
                missing = store.missing_source_ids(self.source_type, context.vendor_id, ids)
                if missing:
                    gone.append(store.entries_for_sources(context.vendor_id, self.source_type, missing))
        for existing in gone:
            reversals = plan_removed_sources(existing, now)
            written = self._insert(reversals, now)
            own = [entry for entry in self._own(existing) if entry.reversal_of]
            new = [entry for entry in reversals if entry.id in written]
            self._count(new + own, TypeStats(reversed=len(new) + len(own)))
            self.open_change += removal_change(existing, self.source_type, context.sync_id)
        store.update_run(context.sync_id, {**self._totals(), f"steps.{self.sync_type}.deletesChecked": True,
                                           f"openChange.{self.sync_type}": str(self.open_change)})

    def _insert(self, entries: list[JournalEntry], now, records: list[dict] | None = None) -> set[str]:
        unbalanced = [entry.id for entry in entries if not is_balanced(entry)]
        if unbalanced:  # the posting rules never produce one; refuse rather than corrupt the books
            raise LedgerInconsistent(f"refusing to post unbalanced entries: {', '.join(unbalanced[:5])}")
        new_kinds = {type(entry.source.id).__name__ for entry in entries} - self.id_types
        if new_kinds:  # recorded first, so a crash right after the insert cannot lose them
            self.store.note_id_types(self.context.vendor_id, self.source_type, new_kinds)
            self.id_types |= new_kinds
        return self.store.insert_entries(entries, self.context.sync_id, now, records).inserted_ids

    def _open_accounts(self, entries: list[JournalEntry]) -> None:
        new_accounts = {line.account for entry in entries for line in entry.lines} - self.known_accounts
        if new_accounts:
            self.store.open_accounts(self.context.vendor_id, new_accounts)
            self.known_accounts |= new_accounts

    def _own(self, existing: list[JournalEntry]) -> list[JournalEntry]:
        return [entry for entry in existing if entry.sync_id == self.context.sync_id]

    def _count(self, posted: list[JournalEntry], stats: TypeStats) -> None:
        """Add what this run put in the ledger to its statistics and its running balances."""
        self.stats = self.stats.with_type(self.sync_type, self.type_stats + stats)
        self.delta = self.delta.plus(balances_of(posted))
        self.written += len(posted)

    def _totals(self) -> dict:
        return {"stats": self.stats.as_document(), "errorsCount": self.stats.total.errors,
                "ledgerDelta": balances_to_document(self.delta), "entriesWritten": self.written}

    def _snapshot(self) -> dict:
        label = STEP_LABELS[self.sync_type]
        return self.reporter.snapshot(self.sync_type, self.processed, self.total, self.stats.total.model_dump(),
                                      f"{label}: {self.processed:,} of {self.total:,}")

    def _report(self, force: bool = False) -> None:
        self.reporter.update(self._snapshot(), force=force)

    def _log_rejection(self, rejection: Rejection) -> None:
        self.logger.warning("rejected vendor=%s sync=%s %s=%s field=%s: %s", self.context.vendor_id,
                            self.context.sync_id, rejection.type.value, rejection.id, rejection.field,
                            rejection.reason)


_GC_THRESHOLD = 50_000  # container allocations between young collections (CPython's default: 700)
_gc_lock = threading.Lock()
_gc_users = 0
_gc_default: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def _rare_cycle_collection() -> Iterator[None]:
    """Run the cycle collector less often while batches are planned.

    A batch allocates ~100k small objects that live until it is written, so with the
    default threshold the collector runs hundreds of times per batch, each time walking
    objects that are freed by reference counting anyway: a quarter of a sync's CPU
    (measured). Entries hold no cycles, so memory stays what the batch needs. Restored
    when the last step running in this process ends.
    """
    global _gc_users, _gc_default
    with _gc_lock:
        if _gc_users == 0:
            _gc_default = gc.get_threshold()
            gc.set_threshold(max(_gc_default[0], _GC_THRESHOLD), *_gc_default[1:])
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0:
                gc.set_threshold(*_gc_default)


def _read_ahead(batches: Generator[T, None, None]) -> Iterator[T]:
    """The same batches, each fetched (a round trip, BSON decoding) while the one before is planned."""
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as reader:
            upcoming = reader.submit(next, batches, None)
            while (batch := upcoming.result()) is not None:
                upcoming = reader.submit(next, batches, None)
                yield batch
    finally:
        batches.close()  # after the reader stopped: the cursor is closed by the thread that owns it now


def _same_bson_type(previous_id: Any, ids: list) -> bool:
    kinds = {type(source_id) for source_id in ids} | ({type(previous_id)} if previous_id is not None else set())
    return len(kinds) == 1
