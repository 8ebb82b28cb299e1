"""SPEC §3 validation: a document that fails is not posted and not lost.

It is recorded in `ledger_sync_errors` with its id, the field and a plain
reason, counted in the run's errors, and the rest of the sync goes on.
"""

from __future__ import annotations

import pytest
from bson.decimal128 import Decimal128

from flows.settings import get_settings
from ledger.kinds import by_type
from ledger.kinds.invoices import Invoice
from ledger.sources import Rejection, Withdrawn
from tests.factories import D, assert_books_balance, entries, expense, insert, net, payment, purchase, sales, stats, utc


def read_source(kind_type: str, raw: dict, base_currency: str):
    return by_type(kind_type).read(raw, base_currency)


# (collection, document, field the rejection must name, words its reason must contain)
BAD = [
    ("salesinvoices", sales("S-no-total", total=None) | {"total": None}, "total", "missing"),
    ("salesinvoices", sales("S-abc-subtotal", subtotal="abc", total="0"), "subtotal", "not a number"),
    ("salesinvoices", sales("S-nan-tax", taxTotal=float("nan"), total="1000"), "taxTotal", "finite"),
    ("salesinvoices", sales("S-inf-total", total="Infinity"), "total", "finite"),
    ("salesinvoices", sales("S-d128-nan", total=Decimal128("NaN")), "total", "finite"),
    ("salesinvoices", sales("S-object-total", total={"$gt": 0}), "total", "object"),
    ("salesinvoices", sales("S-huge", subtotal="1e30", total="1e30"), "subtotal", "large"),
    ("salesinvoices", sales("S-no-date", invoiceDate=None), "invoiceDate", "missing"),
    ("salesinvoices", sales("S-bad-date", invoiceDate="31/02/2026"), "invoiceDate", "iso-8601"),
    ("salesinvoices", sales("S-negative", subtotal="100.00", discountTotal="200.00", total="-100.00"), "total",
     "negative"),
    ("salesinvoices", sales("S-total-off", subtotal="100.00", taxTotal="18.00", total="118.02"), "total", "total"),
    ("salesinvoices", sales("S-items-off", subtotal="1100.00",
                            items=[{"quantity": 2, "unitPrice": "500.00", "discount": 0}]), "subtotal", "items"),
    ("salesinvoices", sales("S-items-0.011", subtotal="100.00",   # 3 × 33.337 = 100.011
                            items=[{"quantity": 3, "unitPrice": "33.337", "discount": 0}]), "subtotal", "items"),
    ("salesinvoices", sales("S-discounts-off", subtotal="1000.00", discountTotal="50.00",
                            items=[{"quantity": 2, "unitPrice": "500.00", "discount": "10.00"}]),
     "discountTotal", "discount"),
    ("salesinvoices", sales("S-status", status="approved"), "status", "unknown"),
    ("salesinvoices", sales("S-no-status", status=None), "status", "missing"),
    ("salesinvoices", sales("S-usd", currency="USD"), "currency", "base currency"),
    ("salesinvoices", sales("S-bad-payment", status="paid", payments=[
        payment("P-ok", "500.00"), payment("P-bad", "five hundred")]), "payments[1].amount", "not a number"),
    ("salesinvoices", sales("S-bad-payment-date", status="paid", payments=[
        payment("P-nodate", "1000.00", date="someday")]), "payments[0].date", "iso-8601"),
    ("salesinvoices", sales("S-payment-nan", status="paid", payments=[
        payment("P-nan", float("inf"))]), "payments[0].amount", "finite"),
    ("salesinvoices", sales("S-payment-ids", status="paid", payments=[   # would collapse into one entry
        payment("P-same", "600.00"), payment("P-same", "400.00", method="cash")]), "payments[1]._id", "own id"),
    ("salesinvoices", sales("S-payment-no-id", status="paid", payments=[
        payment(None, "1000.00")]), "payments[0]._id", "id"),
    ("purchaseinvoices", purchase("B-total-off", subtotal="500.00", total="400.00"), "total", "total"),
    ("purchaseinvoices", purchase("B-status", status="approved"), "status", "unknown"),
    ("purchaseinvoices", purchase("B-eur", currency="EUR"), "currency", "base currency"),
    ("purchaseinvoices", purchase("B-no-method", status="paid", payments=[
        payment("P-x", "1000.00", method=None)]), "payments[0].method", "method"),
    ("expenses", expense("E-words", amount="twelve hundred"), "amount", "not a number"),
    ("expenses", expense("E-missing", amount=None), "amount", "missing"),
    ("expenses", expense("E-negative", amount="-5.00"), "amount", "negative"),
    ("expenses", expense("E-nan-tax", taxAmount="NaN"), "taxAmount", "finite"),
    ("expenses", expense("E-no-date", date=None), "date", "missing"),
    ("expenses", expense("E-bad-date", date="2026-02-30"), "date", "iso-8601"),
    ("expenses", expense("E-pending", paymentStatus="pending"), "paymentStatus", "unknown"),
    ("expenses", expense("E-usd", currency="USD"), "currency", "base currency"),
    ("expenses", expense("E-no-method", paymentMethod=None), "paymentMethod", "method"),
    ("expenses", expense("E-no-category", category="   "), "category", "category"),
]

GOOD = [
    ("salesinvoices", sales("S-good", subtotal="1000.00", taxTotal="180.00", status="partially_paid",
                            payments=[payment("P-good", "500.00", method="cash")])),
    ("salesinvoices", sales("S-zz-good", subtotal="100.00", taxTotal="18.00", total="118.01")),  # 0.01 tolerated
    ("salesinvoices", sales("S-items-0.01", subtotal="100.00",
                            items=[{"quantity": 2, "unitPrice": "33.335", "discount": 0},
                                   {"quantity": 1, "unitPrice": "33.34", "discount": 0}])),  # 100.01: tolerated
    ("purchaseinvoices", purchase("B-good", subtotal="400.00", taxTotal="72.00")),
    ("expenses", expense("E-good", amount="250.00", taxAmount="45.00", paymentMethod="cash")),
]


@pytest.fixture
def small_batches(monkeypatch):
    """Several batches per step, so a rejection in one batch never stops the next."""
    monkeypatch.setenv("LEDGER_BATCH_SIZE", "4")
    get_settings.cache_clear()


def test_every_invalid_document_is_recorded_and_the_valid_ones_are_posted(db, store, sync, small_batches):
    for collection, document, *_ in BAD + GOOD:
        insert(db, collection, document)
    summary = sync("v1")
    assert summary["state"] == "completed"

    recorded = {error["sourceId"]: error for error in db.ledger_sync_errors.find({"syncId": summary["syncId"]})}
    assert len(recorded) == len(BAD)
    for collection, document, field, words in BAD:
        error = recorded[document["_id"]]
        assert error["field"] == field, (document["_id"], error)
        assert words in error["reason"].lower(), (document["_id"], error)
        assert error["vendorId"] == "v1"
        assert error["sourceType"] == {"salesinvoices": "sales_invoice", "purchaseinvoices": "purchase_invoice",
                                       "expenses": "expense"}[collection]
    assert recorded["S-status"]["number"] == "INV-S-status"

    # Nothing of a rejected document is posted, its valid payments included.
    posted_ids = {entry["source"]["id"] for entry in entries(db)}
    assert posted_ids == {"S-good", "S-zz-good", "S-items-0.01", "B-good", "E-good"}
    assert entries(db, **{"source.paymentId": "P-ok"}) == []

    bad_by_type = {c: sum(1 for b in BAD if b[0] == c) for c in ("salesinvoices", "purchaseinvoices", "expenses")}
    assert stats(summary, "sales_invoices")["errors"] == bad_by_type["salesinvoices"]
    assert stats(summary, "purchase_invoices")["errors"] == bad_by_type["purchaseinvoices"]
    assert stats(summary, "expenses")["errors"] == bad_by_type["expenses"]
    assert stats(summary)["errors"] == len(BAD)
    assert stats(summary)["scanned"] == len(BAD) + len(GOOD)
    assert stats(summary)["synced"] == 6  # S-good + its payment, S-zz-good, S-items-0.01, B-good, E-good
    assert store.runs.get(summary["syncId"]).errors_count == len(BAD)

    # receivable 1180 − 500 + 118.01 + 100; sales 1000 + 100 + 100; round_off credit 0.01;
    # cash 500 received − 295 paid for the expense; input tax 72 + 45
    assert net(store) == {
        "accounts_receivable": D("898.01"), "cash": D("205.00"), "sales": D("-1200.00"), "output_tax": D("-198.00"),
        "round_off": D("-0.01"), "purchases": D("400.00"), "input_tax": D("117.00"),
        "accounts_payable": D("-472.00"), "expenses:office-rent": D("250.00"),
    }
    assert_books_balance(db, store)
    assert summary["verification"]["ok"] is True


def test_a_resync_records_the_rejections_again_for_that_sync(db, store, sync):
    insert(db, "salesinvoices", sales("S-status", status="approved", updatedAt=None), sales("S1", updatedAt=None))
    first = sync("v1")
    second = sync("v1")
    assert stats(second)["errors"] == 1 and stats(second)["skipped"] == 1
    assert {e["syncId"] for e in db.ledger_sync_errors.find({"sourceId": "S-status"})} == {first["syncId"],
                                                                                            second["syncId"]}


@pytest.mark.parametrize("vendor_document", [{"_id": "v1", "baseCurrency": "USD"},
                                             {"_id": "vendor-doc-1", "vendorId": "v1", "baseCurrency": "usd"}])
def test_base_currency_comes_from_the_vendor_document(db, store, sync, vendor_document):
    db.vendors.insert_one(vendor_document)
    insert(db, "salesinvoices", sales("S-usd", subtotal="10.00", currency="USD"),
           sales("S-inr", subtotal="20.00", currency="INR"))
    insert(db, "expenses", expense("E-usd", amount="3.00", currency="usd"))
    summary = sync("v1")
    assert {e["sourceId"]: e["field"] for e in db.ledger_sync_errors.find()} == {"S-inr": "currency"}
    assert net(store) == {"accounts_receivable": D("10.00"), "sales": D("-10.00"), "expenses:office-rent": D("3.00"),
                          "bank": D("-3.00")}
    assert stats(summary)["errors"] == 1


def test_another_vendors_base_currency_does_not_apply(db, store, sync):
    db.vendors.insert_one({"_id": "v2", "vendorId": "v2", "baseCurrency": "USD"})
    insert(db, "salesinvoices", sales("S-usd", subtotal="10.00", currency="USD"),
           sales("S-inr", subtotal="20.00", currency="INR"))
    sync("v1")
    assert {e["sourceId"] for e in db.ledger_sync_errors.find()} == {"S-usd"}


def test_base_currency_defaults_to_the_setting(db, store, sync, monkeypatch):
    monkeypatch.setenv("LEDGER_BASE_CURRENCY", "EUR")
    get_settings.cache_clear()
    insert(db, "salesinvoices", sales("S-inr", subtotal="10.00", currency="INR"),
           sales("S-eur", subtotal="20.00", currency="EUR"))
    sync("v1")
    assert {e["sourceId"] for e in db.ledger_sync_errors.find()} == {"S-inr"}
    assert net(store) == {"accounts_receivable": D("20.00"), "sales": D("-20.00")}


def test_default_base_currency_is_inr(monkeypatch):
    from flows.settings import Settings

    monkeypatch.delenv("LEDGER_BASE_CURRENCY", raising=False)
    assert Settings(_env_file=None).ledger_base_currency == "INR"
    assert isinstance(read_source("sales_invoice", sales("S1", currency="INR"), "INR"), Invoice)
    assert isinstance(read_source("sales_invoice", sales("S1", currency=" inr "), "INR"), Invoice)


def test_posted_document_that_becomes_invalid_keeps_its_last_posting(db, store, sync):
    insert(db, "salesinvoices", sales("S1", subtotal="1000.00", status="partially_paid",
                                      payments=[payment("P1", "400.00")], updatedAt=None))
    sync("v1")
    before = entries(db)
    balances = net(store)
    assert balances == {"accounts_receivable": D("600.00"), "bank": D("400.00"), "sales": D("-1000.00")}

    # The app now holds a broken version: a total that does not match its parts, and a broken payment.
    db.salesinvoices.update_one({"_id": "S1"}, {"$set": {"total": "1500.00", "payments.0.amount": "abc"}})
    broken = sync("v1")
    assert broken["state"] == "completed"
    assert stats(broken) == {"scanned": 1, "synced": 0, "reversed": 0, "skipped": 0, "errors": 1}
    assert entries(db) == before  # nothing reversed, nothing new
    assert net(store) == balances
    error = db.ledger_sync_errors.find_one({"syncId": broken["syncId"]})
    assert error["sourceId"] == "S1" and error["field"] == "total"
    # The receivables check counts the rejected invoice as the ledger holds it: no false alarm.
    assert broken["verification"]["receivables"]["ok"] is True

    # Fixed in the app: the old posting is reversed and the new one posted.
    db.salesinvoices.update_one({"_id": "S1"}, {"$set": {"subtotal": "1500.00", "payments.0.amount": "400.00"}})
    fixed = sync("v1")
    assert stats(fixed)["errors"] == 0 and stats(fixed)["reversed"] == 1 and stats(fixed)["synced"] == 1
    assert net(store) == {"accounts_receivable": D("1100.00"), "bank": D("400.00"), "sales": D("-1500.00")}


def test_validation_does_not_apply_to_documents_that_do_not_post(db, store, sync):
    insert(db, "salesinvoices",
           sales("S-draft", status="draft", total="abc", invoiceDate=None, currency="USD"),
           sales("S-void", status="void", subtotal="NaN", payments=[payment("P1", "junk", date="junk")]),
           sales("S-cancelled", status="Cancelled", invoiceDate="not a date", total="-5"),
           sales("S-deleted", isDeleted=True, total="999", currency="GBP"),
           sales("S-deleted-odd-status", isDeleted=True, status="archived", total="x"))
    insert(db, "purchaseinvoices", purchase("B-draft", status="DRAFT", total="1") | {"subtotal": None, "total": None})
    insert(db, "expenses", expense("E-deleted", isDeleted=True, amount="abc", paymentStatus="pending", date=None))
    summary = sync("v1")
    assert list(db.ledger_sync_errors.find()) == []
    assert stats(summary)["errors"] == 0 and stats(summary)["scanned"] == 7
    assert entries(db) == []


@pytest.mark.parametrize("raw, field", [(b[1], b[2]) for b in BAD])
def test_read_source_names_the_field(raw, field):
    source_type = {"invoiceNumber": "sales_invoice", "billNumber": "purchase_invoice"}.get(
        next((k for k in ("invoiceNumber", "billNumber") if k in raw), None), "expense")
    result = read_source(source_type, raw, "INR")
    assert isinstance(result, Rejection)
    assert result.field == field and result.id == raw["_id"] and result.reason


def test_withdrawn_documents_are_read_as_withdrawn():
    assert isinstance(read_source("sales_invoice", sales("S", status="void", total="x"), "INR"), Withdrawn)
    deleted = read_source("expense", expense("E", isDeleted=True, amount=None, updatedAt="2026-04-01"), "INR")
    assert isinstance(deleted, Withdrawn) and deleted.updated_at == utc(2026, 4, 1)
