"""Posted entries are immutable: changes are corrected by reversal entries (SPEC §3).

For every kind of change: the old entries are still there exactly as they
were, the reversal points at the original with the sides swapped and is dated
at the source's `updatedAt` (or the sync time), and the books end up as a fresh
posting of the new state would leave them.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from bson.decimal128 import Decimal128

from tests.factories import (
    D,
    assert_books_balance,
    entries,
    expense,
    insert,
    lines_of,
    net,
    payment,
    purchase,
    sales,
    stats,
    utc,
)

SOURCE_COLLECTIONS = ("salesinvoices", "purchaseinvoices", "expenses")


def now_ms() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def change(db, collection, doc_id, set_=None, unset=(), pull=None) -> datetime:
    """Edit a source document the way the app does: the change plus a new `updatedAt` (returned)."""
    updated = now_ms()
    update = {"$set": {**(set_ or {}), "updatedAt": updated}}
    if unset:
        update["$unset"] = {name: "" for name in unset}
    if pull:
        update["$pull"] = pull
    assert db[collection].update_one({"_id": doc_id}, update).matched_count == 1
    return updated


def snapshot(db, vendor="v1") -> dict[str, dict]:
    return {entry["_id"]: entry for entry in entries(db, vendor)}


def assert_untouched(db, before: dict[str, dict]) -> None:
    after = snapshot(db)
    for entry_id, entry in before.items():
        assert after.get(entry_id) == entry, f"posted entry {entry_id} was changed or removed"


def new_entries(db, before) -> list[dict]:
    return [entry for entry_id, entry in snapshot(db).items() if entry_id not in before]


def assert_reverses(reversal: dict, original: dict, date: datetime) -> None:
    assert reversal["reversalOf"] == original["_id"]
    assert reversal["date"] == date
    assert reversal["source"] == original["source"]
    assert lines_of(reversal) == {account: (credit, debit) for account, (debit, credit) in lines_of(original).items()}


def the_reversal_of(db, original: dict) -> dict:
    found = entries(db, reversalOf=original["_id"])
    assert len(found) == 1, found
    return found[0]


def fresh_net(db, store, sync) -> dict:
    """The trial balance a fresh posting of v1's current source documents gives in an empty ledger."""
    for collection in SOURCE_COLLECTIONS:
        copies = []
        for document in db[collection].find({"vendorId": "v1"}):
            copies.append({**copy.deepcopy(document), "_id": f"fresh:{document['_id']}", "vendorId": "fresh"})
        if copies:
            db[collection].insert_many(copies)
    assert entries(db, "fresh") == []
    summary = sync("fresh", full=True)
    assert stats(summary)["reversed"] == 0 and stats(summary)["errors"] == 0
    return net(store, "fresh")


def posted(db, source_id, payment_id=None) -> dict:
    query = {"source.id": source_id, "reversalOf": {"$exists": False}}
    query["source.paymentId"] = payment_id if payment_id is not None else {"$exists": False}
    found = entries(db, **query)
    assert len(found) == 1, found
    return found[0]


# ---- a document that stops posting ---------------------------------------------

@pytest.mark.parametrize("how", ["void", "cancelled", "soft_delete"])
def test_withdrawn_sales_invoice_reverses_the_invoice_and_its_payments(db, store, sync, how):
    insert(db, "salesinvoices",
           sales("S1", subtotal="1000.00", taxTotal="180.00", status="partially_paid",
                 payments=[payment("P1", "500.00", method="cash"), payment("R1", "-50.00", method="upi")]),
           sales("S2", subtotal="300.00"))
    sync("v1")
    before = snapshot(db)
    originals = [posted(db, "S1"), posted(db, "S1", "P1"), posted(db, "S1", "R1")]

    updated = change(db, "salesinvoices", "S1", {"isDeleted": True} if how == "soft_delete" else {"status": how})
    summary = sync("v1")

    assert_untouched(db, before)
    assert len(new_entries(db, before)) == 3
    for original in originals:
        assert_reverses(the_reversal_of(db, original), original, updated)
    assert stats(summary, "sales_invoices") == {"scanned": 1, "synced": 0, "reversed": 3, "skipped": 0, "errors": 0}
    assert net(store) == {"accounts_receivable": D("300.00"), "sales": D("-300.00")}
    assert net(store) == fresh_net(db, store, sync)
    assert_books_balance(db, store)

    again = sync("v1", full=True)  # reversed once, never twice
    assert stats(again)["reversed"] == 0 and stats(again)["synced"] == 0
    assert len(entries(db)) == len(before) + 3


def test_cancelled_purchase_invoice_and_deleted_expense_are_reversed(db, store, sync):
    insert(db, "purchaseinvoices", purchase("B1", subtotal="800.00", taxTotal="144.00", status="paid",
                                            payments=[payment("P1", "944.00", method="cheque")]))
    insert(db, "expenses", expense("E1", amount="100.00", taxAmount="18.00", paymentStatus="unpaid",
                                   paymentMethod=None), expense("E2", amount="40.00", paymentMethod="cash"))
    sync("v1")
    before = snapshot(db)
    bill, bill_payment, e1 = posted(db, "B1"), posted(db, "B1", "P1"), posted(db, "E1")

    cancelled_at = change(db, "purchaseinvoices", "B1", {"status": "cancelled"})
    deleted_at = change(db, "expenses", "E1", {"isDeleted": True})
    summary = sync("v1")

    assert_untouched(db, before)
    assert_reverses(the_reversal_of(db, bill), bill, cancelled_at)
    assert_reverses(the_reversal_of(db, bill_payment), bill_payment, cancelled_at)
    assert_reverses(the_reversal_of(db, e1), e1, deleted_at)
    assert stats(summary)["reversed"] == 3
    assert net(store) == {"expenses:office-rent": D("40.00"), "cash": D("-40.00")}
    assert net(store) == fresh_net(db, store, sync)


def test_hard_delete_is_only_detected_by_a_full_sync(db, store, sync):
    insert(db, "salesinvoices", sales("S1", subtotal="500.00", status="paid", payments=[payment("P1", "500.00")]),
           sales("S2", subtotal="70.00"))
    insert(db, "expenses", expense("E1", amount="25.00"), expense("E2", amount="35.00"))
    sync("v1")
    before = snapshot(db)
    originals = [posted(db, "S1"), posted(db, "S1", "P1"), posted(db, "E1")]
    db.salesinvoices.delete_one({"_id": "S1"})
    db.expenses.delete_one({"_id": "E1"})

    incremental = sync("v1")
    assert stats(incremental)["reversed"] == 0
    assert snapshot(db) == before

    started = now_ms()
    full = sync("v1", full=True)
    finished = now_ms()
    assert_untouched(db, before)
    for original in originals:
        reversal = the_reversal_of(db, original)
        assert started <= reversal["date"] <= finished  # no updatedAt to go by: dated at the sync time
        assert_reverses(reversal, original, reversal["date"])
    assert stats(full, "sales_invoices")["reversed"] == 2 and stats(full, "expenses")["reversed"] == 1
    assert stats(full)["reversed"] == 3
    assert net(store) == {"accounts_receivable": D("70.00"), "sales": D("-70.00"), "expenses:office-rent": D("35.00"),
                          "bank": D("-35.00")}
    assert net(store) == fresh_net(db, store, sync)
    assert stats(sync("v1", full=True))["reversed"] == 0


def test_reversal_is_dated_at_sync_time_when_the_source_has_no_updated_at(db, store, sync):
    insert(db, "salesinvoices", sales("S1", subtotal="100.00", updatedAt=None))
    sync("v1")
    original = posted(db, "S1")
    db.salesinvoices.update_one({"_id": "S1"}, {"$set": {"status": "void"}})
    started = now_ms()
    sync("v1")
    finished = now_ms()
    reversal = the_reversal_of(db, original)
    assert started <= reversal["date"] <= finished
    assert_reverses(reversal, original, reversal["date"])
    assert net(store) == {}


# ---- a document whose posting-relevant fields change ------------------------------

def test_edited_amounts_reverse_and_repost_only_what_changed(db, store, sync):
    insert(db, "salesinvoices", sales("S1", subtotal="1000.00", taxTotal="180.00", status="partially_paid",
                                      payments=[payment("P1", "200.00", method="cash"),
                                                payment("P2", "300.00", method="bank")]))
    insert(db, "expenses", expense("E1", amount="100.00", taxAmount="18.00"))
    sync("v1")
    before = snapshot(db)
    invoice, p1, p2, e1 = posted(db, "S1"), posted(db, "S1", "P1"), posted(db, "S1", "P2"), posted(db, "E1")

    updated = change(db, "salesinvoices", "S1", {"subtotal": "1200.00", "taxTotal": "216.00", "total": "1416.00",
                                                "payments.1.amount": "350.00"})
    e_updated = change(db, "expenses", "E1", {"amount": "110.00", "taxAmount": "19.80"})
    summary = sync("v1")

    assert_untouched(db, before)
    assert_reverses(the_reversal_of(db, invoice), invoice, updated)
    assert_reverses(the_reversal_of(db, p2), p2, updated)
    assert_reverses(the_reversal_of(db, e1), e1, e_updated)
    assert entries(db, reversalOf=p1["_id"]) == []  # the unchanged payment is left alone
    reposted = [e for e in new_entries(db, before) if "reversalOf" not in e and e["source"]["id"] == "S1"
                and "paymentId" not in e["source"]]
    assert len(reposted) == 1 and reposted[0]["date"] == invoice["date"]
    assert lines_of(reposted[0]) == {
        "accounts_receivable": (D("1416.00"), D("0.00")), "sales": (D("0.00"), D("1200.00")),
        "output_tax": (D("0.00"), D("216.00"))}
    assert len(new_entries(db, before)) == 6
    assert stats(summary, "sales_invoices") == {"scanned": 1, "synced": 2, "reversed": 2, "skipped": 0, "errors": 0}
    assert stats(summary, "expenses") == {"scanned": 1, "synced": 1, "reversed": 1, "skipped": 0, "errors": 0}
    # receivable 1416 − 200 − 350; expense 110 + 19.80 paid from the bank together with 350 received
    assert net(store) == {"accounts_receivable": D("866.00"), "cash": D("200.00"), "bank": D("220.20"),
                          "sales": D("-1200.00"), "output_tax": D("-216.00"), "expenses:office-rent": D("110.00"),
                          "input_tax": D("19.80")}
    assert net(store) == fresh_net(db, store, sync)


def test_changed_dates_reverse_and_repost_on_the_new_date(db, store, sync):
    insert(db, "salesinvoices", sales("S1", subtotal="500.00", status="paid", invoiceDate=utc(2026, 3, 1),
                                      payments=[payment("P1", "500.00", date=utc(2026, 3, 9))]))
    insert(db, "purchaseinvoices", purchase("B1", subtotal="90.00", invoiceDate=utc(2026, 3, 2)))
    insert(db, "expenses", expense("E1", amount="60.00", date=utc(2026, 3, 3)))
    sync("v1")
    before = snapshot(db)
    p1, bill, e1 = posted(db, "S1", "P1"), posted(db, "B1"), posted(db, "E1")
    invoice = posted(db, "S1")

    s_at = change(db, "salesinvoices", "S1", {"payments.0.date": "2026-03-12T10:00:00+05:30"})
    b_at = change(db, "purchaseinvoices", "B1", {"invoiceDate": utc(2026, 4, 2)})
    e_at = change(db, "expenses", "E1", {"date": "2026-03-04"})
    summary = sync("v1")

    assert_untouched(db, before)
    assert entries(db, reversalOf=invoice["_id"]) == []  # the invoice itself did not change
    for original, at, new_date in ((p1, s_at, utc(2026, 3, 12, 4, 30)), (bill, b_at, utc(2026, 4, 2)),
                                   (e1, e_at, utc(2026, 3, 4))):
        assert_reverses(the_reversal_of(db, original), original, at)
        reposted = [e for e in new_entries(db, before) if "reversalOf" not in e
                    and e["source"]["id"] == original["source"]["id"]
                    and e["source"].get("paymentId") == original["source"].get("paymentId")]
        assert len(reposted) == 1, original["_id"]
        assert reposted[0]["date"] == new_date
        assert lines_of(reposted[0]) == lines_of(original)
    assert stats(summary)["reversed"] == 3 and stats(summary)["synced"] == 3
    assert net(store) == fresh_net(db, store, sync)


def test_removed_payment_is_reversed_and_an_added_one_posted(db, store, sync):
    insert(db, "salesinvoices", sales("S1", subtotal="1000.00", status="partially_paid",
                                      payments=[payment("P1", "100.00"), payment("P2", "200.00", method="cash")]))
    insert(db, "purchaseinvoices", purchase("B1", subtotal="400.00", status="paid",
                                            payments=[payment("P3", "400.00")]))
    sync("v1")
    before = snapshot(db)
    p2, p3 = posted(db, "S1", "P2"), posted(db, "B1", "P3")

    s_at = change(db, "salesinvoices", "S1", pull={"payments": {"_id": "P2"}})
    db.salesinvoices.update_one({"_id": "S1"}, {"$push": {"payments": payment("P4", "250.00", method="card")}})
    b_at = change(db, "purchaseinvoices", "B1", {"status": "issued", "payments": []})
    summary = sync("v1")

    assert_untouched(db, before)
    assert_reverses(the_reversal_of(db, p2), p2, s_at)
    assert_reverses(the_reversal_of(db, p3), p3, b_at)
    assert lines_of(posted(db, "S1", "P4")) == {"bank": (D("250.00"), D("0.00")),
                                               "accounts_receivable": (D("0.00"), D("250.00"))}
    assert len(new_entries(db, before)) == 3
    assert stats(summary)["synced"] == 1 and stats(summary)["reversed"] == 2
    # receivable 1000 − 100 − 250; bank +100 +250 (P3 reversed: the supplier was never paid)
    assert net(store) == {"accounts_receivable": D("650.00"), "bank": D("350.00"), "sales": D("-1000.00"),
                          "purchases": D("400.00"), "accounts_payable": D("-400.00")}
    assert net(store) == fresh_net(db, store, sync)


def test_edit_back_and_forth_and_void_then_reissue(db, store, sync):
    insert(db, "salesinvoices", sales("S1", subtotal="100.00", updatedAt=None))
    sync("v1")
    db.salesinvoices.update_one({"_id": "S1"}, {"$set": {"subtotal": "150.00", "total": "150.00"}})
    sync("v1")
    db.salesinvoices.update_one({"_id": "S1"}, {"$set": {"subtotal": "100.00", "total": "100.00"}})
    sync("v1")
    db.salesinvoices.update_one({"_id": "S1"}, {"$set": {"status": "void"}})
    sync("v1")
    assert net(store) == {}
    db.salesinvoices.update_one({"_id": "S1"}, {"$set": {"status": "issued"}})
    last = sync("v1")
    assert stats(last)["synced"] == 1
    all_entries = entries(db)
    postings = [e for e in all_entries if "reversalOf" not in e]
    reversals = [e for e in all_entries if "reversalOf" in e]
    assert len(postings) == 4 and len(reversals) == 3  # 100, 150, 100, (void), 100
    assert len({e["_id"] for e in all_entries}) == 7
    assert {r["reversalOf"] for r in reversals} == {p["_id"] for p in postings[:3]}
    assert net(store) == {"accounts_receivable": D("100.00"), "sales": D("-100.00")}
    assert_books_balance(db, store)


# ---- unchanged is semantic --------------------------------------------------------

def test_same_values_in_other_types_newer_updated_at_or_extra_field_post_nothing(db, store, sync):
    insert(db, "salesinvoices",
           sales("S1", subtotal="1000.00", discountTotal="100.00", taxTotal="162.00", total="1062.00",
                 invoiceDate=utc(2026, 3, 1, 10, 15), status="partially_paid",
                 payments=[payment("P1", "500.50", date=utc(2026, 3, 5), method="cash")]),
           sales("S2", subtotal=Decimal128("250.00"), taxTotal=45.0, invoiceDate="2026-03-07"),
           sales("S3", subtotal="80.00"))
    insert(db, "purchaseinvoices", purchase("B1", subtotal=400, taxTotal="72", invoiceDate="2026-03-02T08:00:00Z"))
    insert(db, "expenses", expense("E1", amount=0.1 + 0.2, taxAmount="0.054", date=utc(2026, 3, 3)))
    sync("v1")
    before = snapshot(db)

    change(db, "salesinvoices", "S1", {
        "subtotal": Decimal128("1000"), "discountTotal": 100, "taxTotal": 162.0, "total": "1062",
        "invoiceDate": "2026-03-01T15:45:00+05:30", "payments.0.amount": Decimal128("500.5"),
        "payments.0.date": "2026-03-05", "payments.0.method": "cash", "payments.0.reference": "changed ref",
        "notes": "an extra field", "customer.name": "Asha Traders Pvt Ltd"})
    change(db, "salesinvoices", "S2", {"subtotal": "250", "taxTotal": Decimal128("45.00"), "total": 295.0,
                                       "invoiceDate": utc(2026, 3, 7), "status": "paid", "invoiceNumber": "X-9"})
    change(db, "salesinvoices", "S3", {})  # only a newer updatedAt
    change(db, "purchaseinvoices", "B1", {"subtotal": "400.00", "taxTotal": 72, "invoiceDate": utc(2026, 3, 2, 8),
                                          "items": None, "isDeleted": False})
    change(db, "expenses", "E1", {"amount": "0.3", "taxAmount": Decimal128("0.05"), "date": "2026-03-03T00:00:00",
                                  "description": "renamed", "category": "office  RENT"})
    summary = sync("v1")

    assert snapshot(db) == before
    assert stats(summary) == {"scanned": 5, "synced": 0, "reversed": 0, "skipped": 5, "errors": 0}


def test_full_sync_with_ids_of_several_bson_types_still_finds_changes_and_hard_deletes(db, store, sync):
    """ObjectId, int and string `_id`s in one collection: the full sync reconciles them all."""
    from bson import ObjectId

    oid = ObjectId()
    insert(db, "salesinvoices", sales(oid, subtotal="100.00"), sales(7, subtotal="200.00"),
           sales("S9", subtotal="300.00"))
    sync("v1", full=True)
    db.salesinvoices.update_one({"_id": 7}, {"$set": {"subtotal": "250.00", "total": "250.00"}})
    db.salesinvoices.delete_one({"_id": "S9"})
    summary = sync("v1", full=True)
    assert stats(summary, "sales_invoices")["reversed"] == 2 and stats(summary, "sales_invoices")["synced"] == 1
    assert net(store)["accounts_receivable"] == D("350.00")


def test_full_sync_finds_hard_deletes_of_every_document_with_one_id_type(db, store, sync):
    """All string-id invoices deleted while ObjectId ones remain: still reversed."""
    from bson import ObjectId

    insert(db, "salesinvoices", sales(ObjectId(), subtotal="100.00"), sales("S1", subtotal="200.00"),
           sales("S2", subtotal="300.00"))
    sync("v1", full=True)
    db.salesinvoices.delete_many({"_id": {"$in": ["S1", "S2"]}})
    summary = sync("v1", full=True)
    assert stats(summary, "sales_invoices")["reversed"] == 2
    assert net(store)["accounts_receivable"] == D("100.00")


@pytest.mark.parametrize("full", [False, True])
def test_a_ledger_whose_id_types_were_never_noted_is_still_reconciled(db, store, sync, full):
    """A vendor's first sync of a type skips looking up posted entries. "First" must come from
    the ledger itself, not only from the noted id types: a ledger written before they were noted
    (or whose vendor state was lost) still gets its changes reversed, never posted twice."""
    insert(db, "salesinvoices", sales("S1", subtotal="100.00"), sales("S2", subtotal="200.00"))
    sync("v1")
    db.ledger_vendor_state.update_many({"_id": "v1"}, {"$unset": {"idTypes": ""}})
    before = snapshot(db)
    original = posted(db, "S1")
    updated = change(db, "salesinvoices", "S1", {"subtotal": "150.00", "total": "150.00"})

    summary = sync("v1", full=full)

    assert_untouched(db, before)
    assert_reverses(the_reversal_of(db, original), original, updated)
    assert stats(summary, "sales_invoices")["synced"] == 1 and stats(summary, "sales_invoices")["reversed"] == 1
    assert net(store)["accounts_receivable"] == D("350.00")
