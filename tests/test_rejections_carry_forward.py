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


def test_rejected_documents_are_read_again_by_index_not_by_scanning(db, store):
    """The carry-forward read of rejected ids is `{vendorId, _id: {$in}}` alone: a server plans it on the
    `(vendorId, _id)` index and examines only those documents, however many the vendor has."""
    from dataclasses import replace

    from ledger.kinds import by_type
    from ledger.store.sources import SourceQuery, source_phases

    db.salesinvoices.insert_many([{"_id": f"S{n}", "vendorId": "v1", "updatedAt": datetime(2026, 1, 1,
                                                                                              tzinfo=UTC)}
                                  for n in range(2000)])
    everything = SourceQuery(vendor_id="v1", kind=by_type("sales_invoice"),
                             changed_since=datetime(2026, 6, 1, tzinfo=UTC), recheck_ids=("S5", "S1999"))
    # A selective incremental sync too (a month): its date range is filtered once read.
    month = replace(everything, date_from=datetime(2026, 2, 1, tzinfo=UTC), date_until=datetime(2026, 3, 1, tzinfo=UTC))
    for phase in source_phases(everything) + source_phases(month):
        explained = db.salesinvoices.find(phase).explain()
        plan = explained["queryPlanner"]["winningPlan"]
        assert "IXSCAN" in str(plan), (phase, plan)
        examined = explained.get("executionStats", {}).get("totalDocsExamined")
        assert examined is None or examined <= 2, (phase, examined)
