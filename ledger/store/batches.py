"""Writing one batch: everything it changes, in one multi-document transaction.

The entries (already given their places in the chain), the monthly balances they move,
the chain head, the accounts and id types they need, the documents rejected, and the
run's checkpoint — all or nothing, and only while the run's attempt is still current
(`RunGuard`): a batch can never be written without its checkpoint, nor by a process
whose run was declared crashed and resumed elsewhere (`Fenced`), nor fork the chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pymongo.client_session import ClientSession

from ledger.balances import LineCounts
from ledger.chain import Head
from ledger.sources import Rejection
from ledger.store.accounts import is_expense
from ledger.store.balances import HeldDays
from ledger.store.conflicts import retry_conflicts
from ledger.store.runs import RunGuard
from ledger.sync_run import SyncRun
from ledger.verification import Balances

if TYPE_CHECKING:
    from ledger.store import Store


class ChainMoved(Exception):
    """The chain head is not where this writer left it: something else wrote the vendor's ledger."""


@dataclass
class BatchWrite:
    vendor_id: str
    guard: RunGuard
    checkpoint: dict[str, Any]  # the run record's changes (stored paths)
    entries: list[dict[str, Any]] = field(default_factory=list)  # as stored, with seq and hash
    expected_head: Head = field(default_factory=Head)
    new_head: Head = field(default_factory=Head)
    movements: Mapping[str, Balances] = field(default_factory=dict)  # by day
    lines: LineCounts = field(default_factory=dict)  # by day
    new_accounts: set[str] = field(default_factory=set)
    rejections: list[Rejection] = field(default_factory=list)
    source_type: str = ""
    new_id_types: set[str] = field(default_factory=set)
    posted_at: datetime | None = None
    held_days: HeldDays | None = None  # the writer's own last days (`BalanceStore.add`)


def write_batch(store: Store, batch: BatchWrite) -> SyncRun | None:
    """Write a batch in one transaction; the run record after it."""

    written_days: dict[str, dict[str, Any]] = {}

    def write(session: ClientSession) -> SyncRun | None:
        run = store.runs.update(batch.guard, batch.checkpoint, session=session)  # first: `Fenced` aborts it all
        if batch.new_accounts:
            expense = sorted(key for key in batch.new_accounts if is_expense(key))
            codes = store.vendors.next_expense_codes(batch.vendor_id, len(expense), session) if expense else []
            store.accounts.open(batch.vendor_id, batch.new_accounts, dict(zip(expense, codes, strict=True)), session)
        if batch.new_id_types:
            store.vendors.note_id_types(batch.vendor_id, batch.source_type, batch.new_id_types, session)
        if batch.entries:
            store.entries.insert_chained(batch.entries, session)
            written_days.clear()
            written_days.update(store.balances.add(batch.vendor_id, batch.movements, batch.lines, session,
                                                   batch.held_days))
            if not store.vendors.advance_head(batch.vendor_id, batch.expected_head, batch.new_head, session):
                raise ChainMoved(f"the chain of vendor {batch.vendor_id} is no longer at place "
                                 f"{batch.expected_head.seq}: another process wrote its ledger; nothing of this "
                                 "batch was written")
        if batch.rejections and batch.posted_at is not None:
            store.rejections.record(batch.guard.sync_id, batch.rejections, batch.posted_at, session)
        return run

    def attempt() -> SyncRun | None:
        with store.db.client.start_session() as session, session.start_transaction():
            return write(session)

    # A write conflict with another writer of the run record (its heartbeat, a cancel request) is
    # retried at once, a few times. Not `with_transaction`'s retries for up to two minutes: a
    # database that went away is the step's retries' business (each bounded by the client's
    # timeout), and they start over from the last checkpoint, which is exactly what this
    # transaction either wrote or did not.
    run = retry_conflicts(attempt)
    if batch.held_days is not None:  # committed: the days are as written
        batch.held_days.months.update(written_days)
    return run
