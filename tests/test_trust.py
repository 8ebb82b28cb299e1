"""Books an accountant can trust (SPEC §9): the hash chain names tampering and stops syncs from
writing on it; closed periods never change; a ledger from before the chain is chained untouched."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, date, datetime

import pytest
from bson import ObjectId
from bson.decimal128 import Decimal128

from flows.database import get_store
from flows.verify import verify_vendor
from ledger.chain import GENESIS, canonical, entry_hash
from tests.factories import D, expense, insert, payment, purchase, sales, utc

VENDOR = "v1"


def load_books(db) -> None:
    insert(db, "salesinvoices",
           sales("S1", subtotal="1000.00", taxTotal="180.00", status="partially_paid",
                 payments=[payment("P1", "500.00", method="cash")]),
           sales("S2", subtotal="250.00", status="paid", payments=[payment("P2", "250.00")]))
    insert(db, "purchaseinvoices", purchase("B1", subtotal="400.00", taxTotal="72.00"))
    insert(db, "expenses", expense("E1", amount="300.00", taxAmount="54.00", paymentMethod="cash"),
           expense("E2", amount="20.00", paymentStatus="unpaid", paymentMethod=None))


def by_seq(db) -> list[dict]:
    return list(db.ledger_entries.find({"vendorId": VENDOR}).sort("seq", 1))


def refused(sync) -> str:
    with pytest.raises(Exception) as failure:
        sync(VENDOR)
    return str(failure.value)


# ---- tampering -----------------------------------------------------------------------

def tamper_amount(db, entries):
    """An amount changed in place, on both sides so the entry still balances."""
    target = entries[2]
    lines = [{**line, **{side: Decimal128("999.99") for side in ("debit", "credit")
                         if line[side].to_decimal() != 0}} for line in target["lines"]]
    assert len(lines) == 2  # one debit, one credit: still balanced after the change
    db.ledger_entries.update_one({"_id": target["_id"]}, {"$set": {"lines": lines}})
    return target, "hash mismatch"


def tamper_line(db, entries):
    target = entries[1]
    db.ledger_entries.update_one({"_id": target["_id"]}, {"$push": {"lines": {
        "account": "cash", "debit": Decimal128("5.00"), "credit": Decimal128("0.00")}}})
    return target, "unbalanced"


def tamper_delete(db, entries):
    target = entries[3]
    db.ledger_entries.delete_one({"_id": target["_id"]})
    return target, "missing"


def tamper_forge(db, entries):
    """An entry inserted after the last one, with a made-up hash."""
    forged = {**copy.deepcopy(entries[0]), "_id": "forged", "seq": entries[-1]["seq"] + 1, "hash": "f" * 64}
    db.ledger_entries.insert_one(forged)
    return forged, "hash mismatch"


def tamper_swap(db, entries):
    first, second = entries[2], entries[3]
    db.ledger_entries.update_one({"_id": first["_id"]}, {"$set": {"seq": -1}})
    db.ledger_entries.update_one({"_id": second["_id"]}, {"$set": {"seq": first["seq"]}})
    db.ledger_entries.update_one({"_id": first["_id"]}, {"$set": {"seq": second["seq"]}})
    return second, "out of order"


@pytest.mark.parametrize("tamper", [tamper_amount, tamper_line, tamper_delete, tamper_forge, tamper_swap])
def test_tampering_is_named_by_verify_and_stops_the_next_sync(db, store, sync, tamper):
    load_books(db)
    assert sync(VENDOR)["state"] == "completed"
    assert verify_vendor(store, VENDOR)["ok"] is True
    entries = by_seq(db)
    target, problem = tamper(db, entries)

    report = verify_vendor(store, VENDOR)
    assert report["ok"] is False
    assert report["firstBad"]["problem"] == problem, report
    if problem != "missing":
        assert report["firstBad"]["entryId"] == target["_id"], report
    assert report["firstBad"]["seq"] == (target["seq"] if problem != "out of order" else entries[2]["seq"])

    before = by_seq(db)
    db.expenses.insert_one(expense("E-new", amount="10.00"))
    message = refused(sync)
    assert "do not verify" in message and "ledger-sync verify" in message, message
    assert by_seq(db) == before  # nothing was written on the tampered books
    run = db.ledger_sync_runs.find_one({"vendorId": VENDOR}, sort=[("startedAt", -1)])
    assert run["state"] == "failed" and "ledger-sync verify" in run["error"]



def test_an_entry_is_hashed_over_the_canonical_json_the_spec_describes():
    """SPEC §9, spelled out by hand: keys sorted, no spaces, amounts as decimal strings, dates as UTC
    ISO-8601 with milliseconds and Z, source ids as their id keys; fields outside the list left out."""
    stored = {"lines": [{"credit": Decimal128("0.00"), "account": "bank", "debit": Decimal128("12.50")},
                        {"account": "accounts_receivable", "debit": Decimal128("0"), "credit": Decimal128("12.5")}],
              "_id": "v|sales_invoice:o~64b7f0c2a1b2c3d4e5f60718|p~7#1", "vendorId": "v", "syncId": "s-1",
              "date": datetime(2026, 3, 10, 9, 30, 15, 123456, tzinfo=UTC), "reversalOf": None,
              "source": {"type": "sales_invoice", "id": ObjectId("64b7f0c2a1b2c3d4e5f60718"), "paymentId": 7,
                         "party": {"name": "Ünïcode Ltd", "id": "c1"}},
              "postedAt": datetime(2026, 3, 11, tzinfo=UTC), "hash": "not part of it", "seq": 99}
    expected = ('{"_id":"v|sales_invoice:o~64b7f0c2a1b2c3d4e5f60718|p~7#1","date":"2026-03-10T09:30:15.123Z",'
                '"lines":[{"account":"bank","credit":"0.00","debit":"12.50"},'
                '{"account":"accounts_receivable","credit":"12.5","debit":"0"}],"reversalOf":null,"seq":3,'
                '"source":{"id":"o~64b7f0c2a1b2c3d4e5f60718","party":{"id":"c1","name":"Ünïcode Ltd"},'
                '"paymentId":"i~7","type":"sales_invoice"},"vendorId":"v"}')
    assert canonical(stored, 3) == expected
    assert entry_hash(GENESIS, stored, 3) == hashlib.sha256(f"{GENESIS}\n{expected}".encode()).hexdigest()

def test_an_untampered_ledger_verifies_after_every_kind_of_sync(db, store, sync):
    load_books(db)
    sync(VENDOR)
    db.salesinvoices.update_one({"_id": "S1"}, {"$set": {"subtotal": "1200.00", "total": "1380.00",
                                                         "updatedAt": utc(2026, 4, 1)}})
    sync(VENDOR)  # incremental
    db.expenses.update_one({"_id": "E2"}, {"$set": {"isDeleted": True, "updatedAt": utc(2026, 4, 2)}})
    sync(VENDOR, date_from="2026-03-01", date_to="2026-03-31", types=["expenses"])  # selective
    db.purchaseinvoices.delete_one({"_id": "B1"})
    sync(VENDOR, full=True)
    report = verify_vendor(store, VENDOR)
    assert report["ok"] and report["firstBad"] is None
    entries = by_seq(db)
    assert [entry["seq"] for entry in entries] == list(range(1, report["entries"] + 1))
    previous = GENESIS
    for entry in entries:  # the chain as the SPEC defines it, recomputed here
        assert entry["hash"] == entry_hash(previous, entry, entry["seq"])
        previous = entry["hash"]
    seal = db.ledger_sync_runs.find_one({"vendorId": VENDOR, "state": "completed"}, sort=[("ledger.runNumber", -1)])
    assert (seal["ledger"]["seq"], seal["ledger"]["hash"]) == (entries[-1]["seq"], entries[-1]["hash"])
    assert report["head"] == {"seq": entries[-1]["seq"], "hash": entries[-1]["hash"], "entryId": entries[-1]["_id"]}


def test_a_ledger_from_before_the_chain_is_chained_without_changing_an_entry(db, store, sync):
    load_books(db)
    sync(VENDOR)
    # The same books as an older version wrote them: no seq, no hash, no monthly balances, no chain head.
    legacy = [{k: v for k, v in entry.items() if k not in ("seq", "hash")} for entry in by_seq(db)]
    db.ledger_entries.delete_many({})
    db.ledger_balances.delete_many({})
    db.ledger_vendor_state.update_one({"_id": VENDOR}, {"$unset": {"chain": "", "balancesBuilt": ""}})
    db.ledger_sync_runs.update_many({}, {"$unset": {"ledger.seq": ""}})
    db.ledger_entries.insert_many(copy.deepcopy(legacy))
    before = list(db.ledger_entries.find({"vendorId": VENDOR}).sort("_id", 1))

    db.expenses.insert_one(expense("E3", amount="40.00", updatedAt=datetime.now(UTC)))
    summary = sync(VENDOR)
    assert summary["state"] == "completed", summary
    after_old = list(db.ledger_entries.find({"vendorId": VENDOR, "seq": {"$exists": False}}).sort("_id", 1))
    assert after_old == before  # byte for byte: chained in a separate collection
    assert db.ledger_chain.count_documents({"vendorId": VENDOR}) == len(legacy)
    new = by_seq(db)
    assert [entry["seq"] for entry in new if "seq" in entry] == [len(legacy) + 1]
    report = verify_vendor(store, VENDOR)
    assert report["ok"] and report["entries"] == len(legacy) + 1
    assert store.books.current(VENDOR).net_balances()["expenses:office-rent"] == D("360.00")


# ---- closed periods ---------------------------------------------------------------------

def test_a_closed_period_never_changes_and_late_entries_are_counted(db, store, sync):
    from flows.periods import close_books, reopen_books

    load_books(db)  # all dated in March 2026
    sync(VENDOR)
    close_books(store, VENDOR, date(2026, 3, 31))
    closed_tb = store.books.as_of(VENDOR, date(2026, 3, 31)).net_balances()
    before_ids = {entry["_id"] for entry in by_seq(db)}

    db.salesinvoices.update_one({"_id": "S2"}, {"$set": {"status": "void", "updatedAt": utc(2026, 3, 20)}})  # void
    db.salesinvoices.update_one({"_id": "S1"}, {"$set": {"subtotal": "1100.00", "total": "1280.00",
                                                         "updatedAt": utc(2026, 4, 5)}})  # edit
    db.expenses.update_one({"_id": "E1"}, {"$set": {"date": utc(2026, 3, 15), "updatedAt": utc(2026, 4, 6)}})  # re-date
    insert(db, "expenses", expense("E-march", amount="70.00", date=utc(2026, 3, 28), updatedAt=utc(2026, 4, 7)))  # add
    summary = sync(VENDOR, full=True)
    assert summary["state"] == "completed", summary
    new = [entry for entry in by_seq(db) if entry["_id"] not in before_ids]
    assert new and all(entry["date"] >= utc(2026, 4, 1) for entry in new)  # nothing on or before the close
    late = [entry for entry in new if entry.get("late")]
    # Dated in March, so booked on April 1: the reversals of S2 and P2 (voided on March 20), S1 and E1
    # posted again on their March dates, E-march. The reversals of S1 and E1 are dated in April anyway.
    assert len(late) == 5 == summary["stats"]["total"]["late"]
    assert summary["stats"]["sales_invoices"]["late"] == 3 and summary["stats"]["expenses"]["late"] == 2
    assert all(entry["date"] == utc(2026, 4, 1) for entry in late)
    assert {entry["source"]["documentDate"] for entry in late if entry["source"]["id"] == "E-march"} == \
        {utc(2026, 3, 28)}
    assert store.books.as_of(VENDOR, date(2026, 3, 31)).net_balances() == closed_tb
    again = sync(VENDOR, full=True)  # late entries stay put while the period is closed
    assert again["stats"]["total"]["synced"] == 0 and again["stats"]["total"]["reversed"] == 0

    reopen_books(store, VENDOR, date(2026, 2, 28), "March adjustments")
    reopened = sync(VENDOR, full=True)
    assert reopened["state"] == "completed", reopened
    # Every late posting went back to its own date (reversed where it was booked), and the books equal a
    # fresh posting of the final state (as of any day after the last change: before it, the reversals of
    # the edits are dated at their documents' updatedAt, as SPEC §3 says, which a fresh posting never had).
    entries = by_seq(db)
    moved = {entry["reversalOf"] for entry in entries if entry.get("reason") == "moved out of a closed period"}
    assert moved == {entry["_id"] for entry in late if "reversalOf" not in entry}
    assert reopened["stats"]["total"]["late"] == 0
    fresh = _fresh_books(db)
    store = get_store()
    try:
        assert store.books.current(VENDOR).net_balances() == fresh.books.current(VENDOR).net_balances()
        for day in (date(2026, 4, 7), date(2026, 12, 31)):
            assert store.books.as_of(VENDOR, day).net_balances() == fresh.books.as_of(VENDOR, day).net_balances(), day
        assert verify_vendor(store, VENDOR)["ok"]
    finally:
        db.client.drop_database(fresh.db.name)


def _fresh_books(db):
    """The same source documents synced into an empty ledger, in a database of their own."""
    from flows.database import reset_clients
    from flows.sync_vendor import sync_vendor_ledger
    from ledger.store import Store

    twin = db.client[db.name + "_fresh"]
    for name in ("salesinvoices", "purchaseinvoices", "expenses"):
        documents = list(db[name].find())
        if documents:
            twin[name].insert_many(documents)
    import os

    original = os.environ["MONGODB_DB"]
    os.environ["MONGODB_DB"] = twin.name
    reset_clients()
    try:
        assert sync_vendor_ledger(VENDOR)["state"] == "completed"
    finally:
        os.environ["MONGODB_DB"] = original
        reset_clients()
    return Store(twin)


# ---- the monthly and daily balances --------------------------------------------------

def _entries_through(store, day: date) -> dict:
    from ledger.balances import day_end

    return store.entries.movements_between(VENDOR, datetime(2000, 1, 1, tzinfo=UTC), day_end(day)).net_balances()


@pytest.mark.parametrize("older_layout", [True, "days"], ids=["months-only", "days-inside-months"])
def test_balances_kept_in_an_older_layout_are_rebuilt_in_this_one(db, store, sync, older_layout):
    load_books(db)  # March: invoices on the 1st, expenses on the 5th, payments on the 10th
    sync(VENDOR)
    db.ledger_balance_days.delete_many({})  # as an older version kept them: no days, or days in the months
    db.ledger_vendor_state.update_one({"_id": VENDOR}, {"$set": {"balancesBuilt": older_layout}})
    assert sync(VENDOR)["state"] == "completed"  # an incremental sync with nothing to post
    for day in (date(2026, 3, 1), date(2026, 3, 7), date(2026, 3, 31)):
        assert store.books.as_of(VENDOR, day).net_balances() == _entries_through(store, day)
    assert store.books.as_of(VENDOR, date(2026, 3, 7)).net_balances() != store.books.current(VENDOR).net_balances()


def test_a_full_sync_puts_right_days_that_disagree_with_the_entries(db, store, sync):
    load_books(db)
    sync(VENDOR)
    month = db.ledger_balance_days.find_one({"vendorId": VENDOR, "month": "2026-03"})
    days = month["days"]
    days["01"], days["10"] = days["10"], days["01"]  # the month's totals still add up
    db.ledger_balance_days.update_one({"_id": month["_id"]}, {"$set": {"days": days}})
    assert store.books.as_of(VENDOR, date(2026, 3, 7)).net_balances() != _entries_through(store, date(2026, 3, 7))
    assert sync(VENDOR, full=True)["state"] == "completed"
    assert store.books.as_of(VENDOR, date(2026, 3, 7)).net_balances() == _entries_through(store, date(2026, 3, 7))


def test_days_written_batch_after_batch_are_those_the_entries_add_up_to(db, sync, monkeypatch):
    """A step's writer keeps the days it last wrote instead of reading them back for each batch:
    over many batches on the same days and months, and a second sync, they stay the entries' sums."""
    from flows.database import reset_clients
    from ledger.balances import daily_difference

    monkeypatch.setenv("LEDGER_BATCH_SIZE", "3")
    reset_clients()
    days = [utc(2026, month, day) for month in (3, 4) for day in (1, 2, 15)]
    insert(db, "salesinvoices", *[sales(f"S{n}", subtotal=f"{n + 1}.00", invoiceDate=days[n % len(days)])
                                  for n in range(20)])
    insert(db, "expenses", *[expense(f"E{n}", amount=f"{n}.50", date=days[n % 4]) for n in range(10)])
    assert sync(VENDOR)["stats"]["total"]["synced"] == 30
    insert(db, "salesinvoices", *[sales(f"T{n}", subtotal="7.00", invoiceDate=days[n % len(days)],
                                        updatedAt=datetime.now(UTC)) for n in range(8)])
    assert sync(VENDOR)["stats"]["total"]["synced"] == 8
    store = get_store()
    held, held_lines = store.balances.daily(VENDOR)
    summed, summed_lines = store.entries.daily_movements(VENDOR)
    assert set(held) == {"2026-03-01", "2026-03-02", "2026-03-15", "2026-04-01", "2026-04-02", "2026-04-15"}
    assert daily_difference(held, summed) == ""
    assert held_lines == summed_lines
