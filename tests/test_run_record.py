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


def test_a_date_selection_counts_only_its_documents_for_progress(db, store):
    """String dates are read a day wider on each side (offsets); the progress total counts only the
    documents the step keeps, as its `processed` does."""
    from ledger.kinds import by_type
    from ledger.store.sources import SourceQuery

    db.salesinvoices.insert_many([
        {"_id": "in-dt", "vendorId": "v1", "invoiceDate": datetime(2026, 3, 10, tzinfo=UTC)},
        {"_id": "in-text", "vendorId": "v1", "invoiceDate": "2026-03-31"},
        {"_id": "day-before", "vendorId": "v1", "invoiceDate": "2026-02-28"},  # in the wider text read only
        {"_id": "day-after", "vendorId": "v1", "invoiceDate": "2026-04-01"},
        {"_id": "out-dt", "vendorId": "v1", "invoiceDate": datetime(2026, 4, 1, tzinfo=UTC)},
    ])
    query = SourceQuery(vendor_id="v1", kind=by_type("sales_invoice"), date_from=datetime(2026, 3, 1, tzinfo=UTC),
                        date_until=datetime(2026, 4, 1, tzinfo=UTC))
    assert store.sources.count(query) == 2
    read = [document["_id"] for _, batch in store.sources.batches(query) for document in batch]
    assert sorted(read) == ["day-after", "day-before", "in-dt", "in-text"]  # the step drops the two outside


def test_a_selective_sync_reports_its_selection_as_the_step_total(db, sync):
    from tests.factories import insert, sales

    insert(db, "salesinvoices", sales("IN1", invoiceDate="2026-03-05"), sales("IN2", invoiceDate="2026-03-31"),
           sales("EDGE", invoiceDate="2026-02-28"), sales("LATER", invoiceDate="2026-04-01"),
           sales("OUT", invoiceDate=datetime(2026, 6, 1, tzinfo=UTC)))
    summary = sync("v1", date_from="2026-03-01", date_to="2026-03-31", types=["sales_invoices"])
    step = db.ledger_sync_runs.find_one({"_id": summary["syncId"]})["steps"]["sales_invoices"]
    assert (step["processed"], step["total"], summary["stats"]["total"]["scanned"]) == (2, 2, 2)
