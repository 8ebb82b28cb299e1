"""A rejected document stays in view: incremental syncs read it again until it is fixed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.factories import D, errors, expense, insert, net, sales, stats


def test_an_unfixed_rejection_is_reported_by_every_incremental_sync_until_fixed(db, store, sync):
    long_ago = datetime(2026, 1, 2, tzinfo=UTC)
    insert(db, "salesinvoices", sales("S1", subtotal="100.00", updatedAt=long_ago),
           sales("BAD", subtotal="50.00", total="999.00", updatedAt=long_ago))
    insert(db, "expenses", expense("E1", amount="20.00", updatedAt=long_ago))

    first = sync("v1")
    assert stats(first)["errors"] == 1

    second = sync("v1")  # nothing changed: only the rejected document is read again
    assert stats(second) == {"scanned": 1, "synced": 0, "reversed": 0, "skipped": 0, "errors": 1}
    assert [(e["sourceId"], e["field"]) for e in errors(db, second["syncId"])] == [("BAD", "total")]

    # Fixed in the app after the second sync started (and before the next one).
    second_started = db.ledger_sync_runs.find_one({"_id": second["syncId"]})["startedAt"]
    db.salesinvoices.update_one({"_id": "BAD"}, {"$set": {"total": "50.00",
                                                          "updatedAt": second_started + timedelta(milliseconds=1)}})
    fixed = sync("v1")
    assert stats(fixed)["errors"] == 0 and stats(fixed, "sales_invoices")["synced"] == 1
    assert net(store)["accounts_receivable"] == D("150.00")

    after = sync("v1")
    assert stats(after)["scanned"] == 0 and stats(after)["errors"] == 0
