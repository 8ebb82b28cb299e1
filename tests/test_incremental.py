"""What a sync reads (SPEC §5): incremental by default, a date range, a subset of types, or full."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import flows.document_step as document_step
from ledger.store.entries import EntryStore
from tests.factories import D, entries, expense, insert, net, payment, purchase, sales, stats, utc


def now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def touch(db, collection, doc_id, **changes) -> None:
    assert db[collection].update_one({"_id": doc_id}, {"$set": {**changes, "updatedAt": now_ms()}}).matched_count


def load_march(db):
    """Documents last edited in March (long before the syncs run)."""
    insert(db, "salesinvoices", sales("S1", subtotal="100.00"), sales("S2", subtotal="200.00"),
           sales("S3", subtotal="300.00", status="paid", payments=[payment("P3", "300.00")]))
    insert(db, "purchaseinvoices", purchase("B1", subtotal="40.00"))
    insert(db, "expenses", expense("E1", amount="10.00"), expense("E2", amount="20.00"))


def test_incremental_sync_reads_only_what_changed_since_the_last_successful_sync(db, store, sync):
    load_march(db)
    first = sync("v1")
    assert stats(first)["scanned"] == 6 and stats(first)["synced"] == 7

    assert stats(sync("v1")) == {"scanned": 0, "synced": 0, "reversed": 0, "skipped": 0, "errors": 0}

    touch(db, "salesinvoices", "S2", subtotal="250.00", total="250.00")
    touch(db, "expenses", "E1", notes="receipt attached")  # changed, but nothing posting-relevant
    insert(db, "purchaseinvoices", purchase("B2", subtotal="60.00", updatedAt=now_ms()))
    third = sync("v1")
    assert stats(third) == {"scanned": 3, "synced": 2, "reversed": 1, "skipped": 1, "errors": 0}
    assert stats(third, "sales_invoices")["scanned"] == 1
    assert stats(third, "purchase_invoices")["scanned"] == 1
    assert stats(third, "expenses")["scanned"] == 1
    assert stats(sync("v1"))["scanned"] == 0
    assert net(store) == {"accounts_receivable": D("350.00"), "bank": D("270.00"), "sales": D("-650.00"),
                          "purchases": D("100.00"), "accounts_payable": D("-100.00"),
                          "expenses:office-rent": D("30.00")}


def test_a_document_changed_while_a_sync_runs_is_picked_up_by_the_next(db, store, sync, monkeypatch):
    load_march(db)
    # Once the sales step is done, the app edits an invoice that was already read.
    original, changed = _edit_meanwhile(monkeypatch, "expense", lambda: touch(
        db, "salesinvoices", "S1", subtotal="120.00", total="120.00"))
    first = sync("v1")
    assert changed
    assert net(store)["sales"] == D("-600.00")  # the sync read S1 before the edit

    monkeypatch.setattr(document_step, "write_batch", original)
    second = sync("v1")
    assert stats(second) == {"scanned": 1, "synced": 1, "reversed": 1, "skipped": 0, "errors": 0}
    assert net(store)["sales"] == D("-620.00")
    assert first["state"] == second["state"] == "completed"


def test_a_failed_sync_does_not_move_the_starting_point(db, store, sync, monkeypatch):
    load_march(db)
    sync("v1")
    touch(db, "expenses", "E2", amount="25.00")
    original = EntryStore.insert_chained

    def fail(self, *args, **kwargs):
        raise ValueError("disk full")

    monkeypatch.setattr(EntryStore, "insert_chained", fail)
    with pytest.raises(ValueError, match="disk full"):
        sync("v1")
    monkeypatch.setattr(EntryStore, "insert_chained", original)
    retried = sync("v1")
    assert stats(retried)["scanned"] == 1 and stats(retried)["synced"] == 1 and stats(retried)["reversed"] == 1
    assert net(store)["expenses:office-rent"] == D("35.00")


def test_a_partial_sync_does_not_move_the_starting_point_for_what_it_did_not_read(db, store, sync):
    load_march(db)
    sync("v1")
    touch(db, "salesinvoices", "S1", subtotal="110.00", total="110.00", invoiceDate=utc(2026, 5, 2))
    touch(db, "expenses", "E1", amount="11.00")
    ranged = sync("v1", date_from="2026-03-01", date_to="2026-03-31")  # S1 is in May now: not in range
    assert stats(ranged, "sales_invoices")["scanned"] == 0 and stats(ranged, "expenses")["scanned"] == 1
    # A ranged sync read only part of the documents: it is no starting point for the next
    # incremental one. E1 changed after the last sync that read every expense, so it is read
    # again (already posted by the ranged sync: skipped).
    only_expenses = sync("v1", types=["expenses"])
    assert stats(only_expenses) == {"scanned": 1, "synced": 0, "reversed": 0, "skipped": 1, "errors": 0}
    following = sync("v1")
    # That expenses-only sync covered expenses, not sales: S1 is read now, E1 not.
    assert stats(following, "expenses")["scanned"] == 0
    assert stats(following, "sales_invoices")["scanned"] == 1
    assert stats(following, "sales_invoices")["reversed"] == 1
    assert net(store)["sales"] == D("-610.00")
    assert net(store)["expenses:office-rent"] == D("31.00")


def test_date_range_is_inclusive_on_the_documents_own_date(db, store, sync):
    insert(db, "salesinvoices",
           sales("S-feb28", subtotal="1.00", invoiceDate=utc(2026, 2, 28, 23, 59, 59)),
           sales("S-mar01", subtotal="2.00", invoiceDate=utc(2026, 3, 1),
                 status="paid", payments=[payment("P-april", "2.00", date=utc(2026, 4, 20))]),
           sales("S-mar31", subtotal="4.00", invoiceDate=utc(2026, 3, 31, 23, 59, 59)),
           sales("S-apr01", subtotal="8.00", invoiceDate=utc(2026, 4, 1)),
           # ISO strings: read as UTC, offsets applied
           sales("S-str-in", subtotal="16.00", invoiceDate="2026-03-15"),
           sales("S-str-late", subtotal="32.00", invoiceDate="2026-03-31T23:30:00-01:00"),  # 1 Apr 00:30 UTC
           sales("S-str-early", subtotal="64.00", invoiceDate="2026-04-01T02:00:00+05:30"),  # 31 Mar 20:30 UTC
           sales("S-str-feb", subtotal="128.00", invoiceDate="2026-02-28T12:00:00Z"))
    insert(db, "expenses", expense("E-mar", amount="3.00", date="2026-03-31"),
           expense("E-apr", amount="5.00", date=utc(2026, 4, 1)))
    summary = sync("v1", date_from="2026-03-01", date_to="2026-03-31")

    posted = {e["source"]["id"] for e in entries(db)}
    assert posted == {"S-mar01", "S-mar31", "S-str-in", "S-str-early", "E-mar"}
    assert entries(db, **{"source.paymentId": "P-april"}), "an invoice brings all its payments"
    assert stats(summary, "sales_invoices")["scanned"] == 4
    assert stats(summary, "expenses")["scanned"] == 1
    # receivable 2 + 4 + 16 + 64 − 2 (paid in April)
    assert net(store) == {"accounts_receivable": D("84.00"), "bank": D("-1.00"), "sales": D("-86.00"),
                          "expenses:office-rent": D("3.00")}


def test_documents_outside_the_range_are_left_alone_whatever_their_date_type(db, store, sync):
    """A string-dated document outside the range is not read: not rejected, not reversed."""
    insert(db, "salesinvoices", sales("S-in", subtotal="10.00", invoiceDate="2026-03-10"),
           sales("S-out-bad", subtotal="10.00", total="99.00", invoiceDate="2026-05-10"),
           sales("S-out-bad-dt", subtotal="10.00", total="99.00", invoiceDate=utc(2026, 5, 10)),
           sales("S-out-posted", subtotal="30.00", invoiceDate="2026-05-11"))
    insert(db, "expenses", expense("E-out-bad", amount="abc", date="2026-05-12"))
    sync("v1", date_from="2026-05-11", date_to="2026-05-11")  # posts S-out-posted
    db.salesinvoices.update_one({"_id": "S-out-posted"}, {"$set": {"status": "void"}})

    march = sync("v1", date_from="2026-03-01", date_to="2026-03-31")
    assert stats(march) == {"scanned": 1, "synced": 1, "reversed": 0, "skipped": 0, "errors": 0}
    assert list(db.ledger_sync_errors.find({"syncId": march["syncId"]})) == []
    assert net(store) == {"accounts_receivable": D("40.00"), "sales": D("-40.00")}


def test_types_filter(db, store, sync):
    load_march(db)
    summary = sync("v1", types=["expenses", "purchase_invoices"])
    assert stats(summary, "sales_invoices") == {"scanned": 0, "synced": 0, "reversed": 0, "skipped": 0, "errors": 0}
    assert stats(summary, "purchase_invoices")["scanned"] == 1 and stats(summary, "expenses")["scanned"] == 2
    assert {e["source"]["type"] for e in entries(db)} == {"purchase_invoice", "expense"}
    run = store.runs.get(summary["syncId"])
    assert run.steps["sales_invoices"].state == "skipped"
    assert run.steps["expenses"].state == "completed"

    sales_only = sync("v1", types=["sales_invoices"])
    assert stats(sales_only)["scanned"] == 3 and stats(sales_only)["synced"] == 4
    assert net(store) == {"accounts_receivable": D("300.00"), "bank": D("270.00"), "sales": D("-600.00"),
                          "purchases": D("40.00"), "accounts_payable": D("-40.00"),
                          "expenses:office-rent": D("30.00")}


def test_full_sync_reads_everything_and_finds_hard_deletes_incremental_does_not(db, store, sync):
    load_march(db)
    sync("v1")
    db.salesinvoices.delete_one({"_id": "S3"})
    db.expenses.delete_one({"_id": "E2"})
    incremental = sync("v1")
    assert stats(incremental) == {"scanned": 0, "synced": 0, "reversed": 0, "skipped": 0, "errors": 0}
    assert net(store)["sales"] == D("-600.00")
    full = sync("v1", full=True)
    assert stats(full)["scanned"] == 4 and stats(full)["skipped"] == 4
    assert stats(full, "sales_invoices")["reversed"] == 2 and stats(full, "expenses")["reversed"] == 1
    assert net(store) == {"accounts_receivable": D("300.00"), "sales": D("-300.00"), "purchases": D("40.00"),
                          "accounts_payable": D("-40.00"), "expenses:office-rent": D("10.00"), "bank": D("-10.00")}


def test_ranged_full_sync_reverses_hard_deletes_only_in_its_range(db, store, sync):
    insert(db, "expenses", expense("E-mar", amount="3.00", date=utc(2026, 3, 3)),
           expense("E-apr", amount="5.00", date=utc(2026, 4, 4)))
    sync("v1")
    db.expenses.delete_many({})
    march = sync("v1", full=True, date_from="2026-03-01", date_to="2026-03-31")
    assert stats(march)["reversed"] == 1
    assert net(store) == {"expenses:office-rent": D("5.00"), "bank": D("-5.00")}


def test_documents_created_or_soft_deleted_while_a_sync_runs_are_picked_up_by_the_next(db, store, sync, monkeypatch):
    """Changes after a step read its documents: a new invoice, a new expense, a soft delete.
    The next incremental sync reads exactly those, nothing else."""
    load_march(db)

    def create_and_delete():  # sales are done, expenses not yet read
        insert(db, "salesinvoices", sales("S4", subtotal="400.00", updatedAt=now_ms()))
        touch(db, "salesinvoices", "S2", isDeleted=True)
        insert(db, "expenses", expense("E3", amount="30.00", updatedAt=now_ms()))  # read by this very sync

    original, changed = _edit_meanwhile(monkeypatch, "purchase_invoice", create_and_delete)
    first = sync("v1")
    assert changed and stats(first, "expenses")["scanned"] == 3 and stats(first, "sales_invoices")["scanned"] == 3
    assert net(store)["sales"] == D("-600.00")

    monkeypatch.setattr(document_step, "write_batch", original)
    second = sync("v1")
    assert stats(second, "sales_invoices") == {"scanned": 2, "synced": 1, "reversed": 1, "skipped": 0, "errors": 0}
    # E3 changed after the first sync started, so it is read again (already posted: skipped); B1, E1, E2 are not.
    assert stats(second, "expenses") == {"scanned": 1, "synced": 0, "reversed": 0, "skipped": 1, "errors": 0}
    assert stats(second, "purchase_invoices")["scanned"] == 0
    assert net(store)["sales"] == D("-800.00")  # S1 100 + S3 300 + S4 400; S2 reversed
    assert stats(sync("v1"))["scanned"] == 0


def test_a_change_committed_late_is_caught_by_the_overlap(db, store, sync, monkeypatch):
    """The app stamps `updatedAt` before its write commits: a change stamped just before a sync
    started but committed after that sync read is re-read thanks to LEDGER_INCREMENTAL_OVERLAP_SECONDS."""
    from flows.settings import get_settings

    monkeypatch.setenv("LEDGER_INCREMENTAL_OVERLAP_SECONDS", "5")
    get_settings.cache_clear()
    try:
        load_march(db)
        first = sync("v1")
        started = store.runs.get(first["syncId"]).started_at
        stamped_before_start = started.replace(microsecond=started.microsecond // 1000 * 1000) - timedelta(seconds=2)
        insert(db, "expenses", expense("E-late", amount="7.00", updatedAt=stamped_before_start))
        second = sync("v1")
        assert stats(second, "expenses")["scanned"] == 1 and stats(second, "expenses")["synced"] == 1
        assert stats(second, "sales_invoices")["scanned"] == 0
        assert net(store)["expenses:office-rent"] == D("37.00")
    finally:
        get_settings.cache_clear()


def _edit_meanwhile(monkeypatch, when_writing: str, edit):
    """Run `edit` (the business app changing data) once, right after the sync wrote its first
    entries of type `when_writing`; returns the real batch writer and a list that records the edit."""
    original = document_step.write_batch
    changed: list[bool] = []

    def write_and_edit(store, batch):
        run = original(store, batch)
        if not changed and any(e["source"]["type"] == when_writing for e in batch.entries):
            edit()
            changed.append(True)
        return run

    monkeypatch.setattr(document_step, "write_batch", write_and_edit)
    return original, changed
