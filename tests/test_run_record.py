"""What a run record says about itself: its duration across a crash and a resume, and the rejected
documents it names (with the date and amount that tell two documents with one number apart)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger.kinds.expense import read as read_expense
from ledger.kinds.sales_invoice import SALES_INVOICE
from ledger.sources import Rejection
from ledger.sync_run import RunState, SyncParameters, SyncRun

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _run() -> SyncRun:
    return SyncRun.new("sync_v_1", "v", SyncParameters(), {}, {}, 1, T0, state=RunState.RUNNING)


def test_a_resumed_crashed_run_counts_only_the_time_it_ran():
    # Ran 10 s, then its process died; the crash was noticed 5 minutes later; resumed an hour after that.
    crashed = _run().model_copy(update={"heartbeat_at": T0 + timedelta(seconds=10)}).closed(
        RunState.CRASHED, "stopped responding", T0 + timedelta(minutes=5))
    assert crashed.duration_ms == 10_000
    resumed_at = T0 + timedelta(hours=1)
    resumed = crashed.model_copy(update={"state": RunState.RUNNING, "attempt_started_at": resumed_at,
                                         "heartbeat_at": resumed_at, "ended_at": None, "attempts": 2})
    assert resumed.running_ms(resumed_at + timedelta(seconds=5)) == 15_000  # while it runs again
    done = resumed.closed(RunState.COMPLETED, None, resumed_at + timedelta(seconds=20))
    assert done.duration_ms == 30_000


def test_a_cancelled_then_resumed_run_leaves_out_the_gap():
    cancelled = _run().closed(RunState.CANCELLED, None, T0 + timedelta(seconds=7))
    resumed_at = T0 + timedelta(days=1)
    resumed = cancelled.model_copy(update={"state": RunState.RUNNING, "attempt_started_at": resumed_at})
    assert resumed.closed(RunState.COMPLETED, None, resumed_at + timedelta(seconds=3)).duration_ms == 10_000


def test_a_rejected_document_keeps_its_date_and_amount_as_stated():
    raw = {"_id": "inv-1", "vendorId": "v", "invoiceNumber": "INV-90001", "status": "issued",
           "invoiceDate": "2026-02-03T10:00:00Z", "subtotal": "100", "taxTotal": "5", "total": "99.5"}
    rejected = SALES_INVOICE.read(raw, "INR")
    assert isinstance(rejected, Rejection) and rejected.field == "total"
    assert (rejected.number, rejected.date, rejected.amount) == ("INV-90001", "2026-02-03", "99.50")

    unreadable = read_expense({"_id": "e-1", "vendorId": "v", "description": "Fuel", "paymentStatus": "paid",
                               "date": "not a date", "amount": "12"}, "INR")
    assert isinstance(unreadable, Rejection) and unreadable.field == "date"
    assert (unreadable.date, unreadable.amount) == ("not a date", "12.00")
