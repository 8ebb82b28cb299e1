"""The body of the three document steps: read a batch, plan it, write it, checkpoint.

Reading and planning batch k+1 overlaps with writing batch k (a writer thread;
pymongo releases the GIL while it waits on the server), so the sync runs close
to the database's own write speed. The writer applies batches strictly in
order, and each batch ends with one checkpoint update, so a resumed or retried
step continues after the last batch whose checkpoint landed; anything written
past it is rewritten as a no-op (deterministic ids).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flows import progress
from flows.database import get_store
from flows.settings import get_settings
from ledger.batch import BatchPlan, plan_batch, plan_removed_sources, removed_source_entries
from ledger.entries import JournalEntry
from ledger.sources import SYNC_TYPES, Rejection
from ledger.store import LedgerStore, SourceQuery, source_phases, utc_now
from ledger.sync_run import STEP_LABELS, SyncStats, TypeStats

log = logging.getLogger("ledger_sync.sync")


class SyncCancelled(Exception):
    pass


@dataclass
class _Write:
    """One batch, planned, waiting to be written."""

    plan: BatchPlan
    removed: list[JournalEntry]
    phase: int
    last_id: Any
    documents: int
    new_accounts: set[str] = field(default_factory=set)


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

    def __init__(self, context, sync_type: str, logger: logging.Logger | logging.LoggerAdapter = log):
        self.context = context
        self.sync_type = sync_type
        self.source_type = SYNC_TYPES[sync_type]
        self.logger = logger
        self.store: LedgerStore = get_store()
        self.crash_after = get_settings().ledger_crash_after_documents
        run = self.store.run(context.sync_id)
        self.step_record = run["steps"][sync_type]
        self.stats = SyncStats.from_document(run["stats"])
        self.open_amount = Decimal(run.get("openAmounts", {}).get(sync_type, "0"))
        self.processed = self.step_record.get("processed", 0) if self.step_record.get("lastId") is not None else 0
        self.total = 0
        self.known_accounts: set[str] = set()
        self.reporter = progress.ProgressReporter(context.sync_id, context.vendor_id)
        self.cancelled = False  # set by the writer when the run record asks for it

    @property
    def type_stats(self) -> TypeStats:
        return getattr(self.stats, self.sync_type)

    def run(self) -> TypeStats:
        context = self.context
        parameters = context.parameters
        query = SourceQuery(vendor_id=context.vendor_id, source_type=self.source_type, date_from=parameters.start,
                            date_until=parameters.end_exclusive, changed_since=context.changed_since.get(self.sync_type))
        self.known_accounts = self.store.known_accounts(context.vendor_id)
        # A full sync of everything reads every document in `_id` order, so fetching the
        # ledger's entries by id range finds hard-deleted documents at no extra cost.
        by_range = parameters.full and parameters.covers_everything
        previous_id = self.step_record.get("lastId")
        resume_at = SourceQuery(**{**query.__dict__, "after_id": previous_id,
                                   "phase": self.step_record.get("phase", 0)})
        self.total = self.processed + self.store.count_sources(resume_at)
        phases = source_phases(query)
        with self.reporter:
            self._report(force=True)
            writer = _Writer(self)
            try:
                for phase, documents in self.store.source_batches(resume_at):
                    ids = [document["_id"] for document in documents]
                    if not phases[phase].indexed:
                        self.total += len(documents)  # string-dated documents are counted as they come
                    if by_range:
                        existing = self.store.entries_in_source_range(context.vendor_id, self.source_type,
                                                                      previous_id, ids[-1])
                        removed = removed_source_entries(existing, ids)
                    else:
                        existing = self.store.entries_for_sources(context.vendor_id, self.source_type, ids)
                        removed = []
                    plan = plan_batch(self.source_type, documents, existing, parameters, context.base_currency,
                                      utc_now(), sync_id=context.sync_id)
                    writer.submit(_Write(plan=plan, removed=removed, phase=phase, last_id=ids[-1],
                                         documents=len(documents)))
                    previous_id = ids[-1]
                    if self.cancelled:
                        break
            finally:
                writer.close()
            if self.cancelled:
                raise SyncCancelled()
            if parameters.full:
                self._reverse_hard_deletes(by_range, previous_id)
        return self.type_stats

    def write(self, job: _Write) -> None:
        """Runs on the writer thread: accounts, entries, rejections, then the checkpoint."""
        store, context = self.store, self.context
        now = utc_now()
        removed = plan_removed_sources(job.removed, now)
        entries = job.plan.entries + removed
        new_accounts = {line.account for entry in entries for line in entry.lines} - self.known_accounts
        if new_accounts:
            store.open_accounts(context.vendor_id, new_accounts)
            self.known_accounts |= new_accounts
        written = store.insert_entries(entries, context.sync_id, now)
        store.record_rejections(context.sync_id, job.plan.rejections, now)
        for rejection in job.plan.rejections:
            self._log_rejection(rejection)
        self.processed += job.documents
        if self.crash_after is not None and self.processed >= self.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)  # test hook: die after writing, before the checkpoint
        removed_reversals = sum(1 for entry in removed if entry.id in written.inserted_ids)
        batch_stats = job.plan.stats(written.inserted_ids) + TypeStats(reversed=removed_reversals)
        self.stats = self.stats.with_type(self.sync_type, self.type_stats + batch_stats)
        self.open_amount += job.plan.open_amount
        run = store.update_run(context.sync_id, {
            f"steps.{self.sync_type}.phase": job.phase, f"steps.{self.sync_type}.lastId": job.last_id, f"steps.{self.sync_type}.processed": self.processed,
            "stats": self.stats.as_document(), "errorsCount": self.stats.total.errors,
            f"openAmounts.{self.sync_type}": str(self.open_amount),
            "progress": progress.public(self._snapshot()), "heartbeatAt": now,
        })
        if run.get("cancelRequested"):
            self.cancelled = True
        self._report()

    def _reverse_hard_deletes(self, by_range: bool, last_id: Any) -> None:
        """Full sync: reverse what the ledger holds for documents gone from the source."""
        store, context = self.store, self.context
        now = utc_now()
        if by_range:  # the stretch of ids after the last document read
            batches = [store.entries_in_source_range(context.vendor_id, self.source_type, last_id, None)]
        else:  # a date range: check the documents the ledger holds for that range
            batches = []
            for ids in store.posted_source_id_batches(self.source_type, context.vendor_id, context.parameters.start,
                                                      context.parameters.end_exclusive):
                missing = store.missing_source_ids(self.source_type, context.vendor_id, ids)
                if missing:
                    batches.append(store.entries_for_sources(context.vendor_id, self.source_type, missing))
        reversed_count = 0
        for existing in batches:
            reversed_count += store.insert_entries(plan_removed_sources(existing, now), context.sync_id,
                                                   now).inserted_reversals
        if reversed_count:
            self.stats = self.stats.with_type(self.sync_type, self.type_stats + TypeStats(reversed=reversed_count))
            store.update_run(context.sync_id, {"stats": self.stats.as_document()})

    def _snapshot(self) -> dict:
        label = STEP_LABELS[self.sync_type]
        return self.reporter.snapshot(self.sync_type, self.processed, self.total, self.stats.total.model_dump(),
                                      f"{label}: {self.processed} of {self.total}")

    def _report(self, force: bool = False) -> None:
        self.reporter.update(self._snapshot(), force=force)

    def _log_rejection(self, rejection: Rejection) -> None:
        self.logger.warning("rejected vendor=%s sync=%s %s=%s field=%s: %s", self.context.vendor_id,
                            self.context.sync_id, rejection.type.value, rejection.id, rejection.field,
                            rejection.reason)
