"""Vendor isolation: syncing vendor A never reads, writes or counts vendor B's documents."""

from __future__ import annotations

from bson import json_util

from tests.factories import D, entries, expense, insert, net, payment, purchase, sales, stats, utc

A, B = "acme", "acme-b"  # B's id starts with A's: a prefix match would leak


def load(db, vendor):
    insert(db, "salesinvoices",
           sales(f"{vendor}-S1", vendor=vendor, subtotal="1000.00", taxTotal="180.00", status="partially_paid",
                 payments=[payment(f"{vendor}-P1", "300.00")]),
           sales(f"{vendor}-S2", vendor=vendor, subtotal="50.00", status="void"),
           sales(f"{vendor}-S3", vendor=vendor, subtotal="10.00", currency="USD"))  # rejected
    insert(db, "purchaseinvoices", purchase(f"{vendor}-B1", vendor=vendor, subtotal="200.00"))
    insert(db, "expenses", expense(f"{vendor}-E1", vendor=vendor, amount="75.00", category="Travel"))


def ledger_of(db, vendor) -> dict:
    return {name: list(db[f"ledger_{name}"].find({"vendorId": vendor}).sort("_id", 1))
            for name in ("entries", "accounts", "sync_runs", "sync_errors")}


def test_syncing_a_never_touches_b(db, recorder, store, sync):
    load(db, A)
    load(db, B)
    # B's own books, with an extra document only B has.
    insert(db, "expenses", expense(f"{B}-E2", vendor=B, amount="999.00"))
    sync(B)
    b_before = ledger_of(db, B)
    b_sources = {c: list(db[c].find({"vendorId": B}).sort("_id", 1)) for c in ("salesinvoices", "purchaseinvoices",
                                                                                "expenses")}
    recorder.commands.clear()
    recorder.replies.clear()

    first = sync(A)
    second = sync(A, full=True)

    # Nothing of B was read, written or even named in a command.
    for record in recorder.commands + recorder.replies:
        text = json_util.dumps(record)
        assert B not in text, record
    # Every read of a source collection is limited to A.
    source_reads = [c for c in recorder.commands if c["name"] in ("find", "aggregate", "count", "distinct")
                    and c["command"].get(c["name"]) in ("salesinvoices", "purchaseinvoices", "expenses")]
    assert source_reads
    for read in source_reads:
        assert f'"vendorId": "{A}"' in json_util.dumps(read["command"]), read

    assert ledger_of(db, B) == b_before
    assert {c: list(db[c].find({"vendorId": B}).sort("_id", 1)) for c in b_sources} == b_sources

    # A's statistics count A's documents only: 5 scanned, 1 rejected, S1 + P1 + B1 + E1 posted.
    assert stats(first) == {"scanned": 5, "synced": 4, "reversed": 0, "skipped": 1, "errors": 1}
    assert stats(second)["scanned"] == 5 and stats(second)["skipped"] == 4 and stats(second)["errors"] == 1
    assert first["verification"]["receivables"]["documents"] == "880.00"
    assert net(store, A) == {"accounts_receivable": D("880.00"), "bank": D("225.00"), "sales": D("-1000.00"),
                             "output_tax": D("-180.00"), "purchases": D("200.00"), "accounts_payable": D("-200.00"),
                             "expenses:travel": D("75.00")}
    assert {e["sourceId"] for e in db.ledger_sync_errors.find({"syncId": first["syncId"]})} == {f"{A}-S3"}
    assert all(e["vendorId"] == A for e in entries(db, A))


def test_a_full_sync_of_a_does_not_reverse_b(db, store, sync):
    """Hard-delete detection compares A's ledger with A's source documents only."""
    load(db, A)
    load(db, B)
    sync(A)
    sync(B)
    b_before = ledger_of(db, B)
    db.salesinvoices.delete_many({"vendorId": B})
    summary = sync(A, full=True)
    assert stats(summary)["reversed"] == 0
    assert ledger_of(db, B)["entries"] == b_before["entries"]


def test_another_vendors_sync_does_not_move_b_incremental_starting_point(db, store, sync):
    load(db, B)
    sync(B)
    # B edits a document after its sync, then A syncs.
    db.expenses.update_one({"_id": f"{B}-E1"}, {"$set": {"amount": "80.00", "updatedAt": utc(2099, 1, 1)}})
    load(db, A)
    sync(A)
    summary = sync(B)  # incremental: since B's own last sync, not A's
    # The edited expense, plus B's one rejected document, which is read again until fixed.
    assert stats(summary) == {"scanned": 2, "synced": 1, "reversed": 1, "skipped": 0, "errors": 1}
    assert net(store, B)["expenses:travel"] == D("80.00")


def test_a_running_sync_of_b_does_not_block_a(db, store, sync):
    from flows.runs import open_run
    from ledger.sync_run import SyncParameters

    load(db, A)
    open_run(store, B, SyncParameters(), 0, 3600)  # B has a sync in progress
    summary = sync(A)
    assert summary["state"] == "completed"
    assert store.runs.running(B) is not None
