"""Every row of the SPEC §3 posting table, through the real flow into the real database.

Expected amounts are worked out by hand in each test from the document's numbers.
"""

from __future__ import annotations

import pytest
from bson.decimal128 import Decimal128

from ledger.accounts import category_slug, expense_account_key, settlement_account
from tests.factories import (
    D,
    assert_balanced,
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

ZERO = D("0.00")


def the_entry(db, source_id, payment_id=None, vendor="v1") -> dict:
    query = {"source.id": source_id, "reversalOf": {"$exists": False}}
    query["source.paymentId"] = payment_id if payment_id is not None else {"$exists": False}
    found = entries(db, vendor, **query)
    assert len(found) == 1, found
    assert_balanced(found[0])
    return found[0]


def test_sales_invoice_with_discount_and_tax(db, store, sync):
    items = [
        {"description": "Widget", "quantity": 2, "unitPrice": Decimal128("500.00"), "discount": "100.00",
         "taxRate": 18},
        {"description": "Cable", "quantity": 1, "unitPrice": 250, "discount": 0, "taxRate": 18},
    ]
    # subtotal 2×500 + 250 = 1250; discounts 100; tax 18% of 1150 = 207; total 1357
    insert(db, "salesinvoices", sales("S1", items=items, subtotal="1250.00", discountTotal="100.00",
                                      taxTotal="207.00", total="1357.00", invoiceDate=utc(2026, 3, 1, 10)))
    summary = sync("v1")

    entry = the_entry(db, "S1")
    assert lines_of(entry) == {
        "accounts_receivable": (D("1357.00"), ZERO),
        "sales": (ZERO, D("1150.00")),
        "output_tax": (ZERO, D("207.00")),
    }
    assert entry["date"] == utc(2026, 3, 1, 10)
    assert entry["source"]["type"] == "sales_invoice" and entry["source"]["number"] == "INV-S1"
    assert entry["syncId"] == summary["syncId"]
    assert net(store) == {"accounts_receivable": D("1357.00"), "sales": D("-1150.00"), "output_tax": D("-207.00")}
    assert stats(summary, "sales_invoices") == {"scanned": 1, "synced": 1, "reversed": 0, "skipped": 0, "errors": 0}
    assert summary["state"] == "completed"
    assert summary["verification"]["receivables"]["ok"] is True


def test_customer_payments_cash_to_cash_every_other_method_to_bank(db, store, sync):
    amounts = {"cash": "10.00", "bank": "20.00", "card": "30.00", "upi": "40.00", "cheque": "50.00", "other": "60.00"}
    payments = [payment(f"P-{method}", amount, date=utc(2026, 3, 2 + i), method=method)
                for i, (method, amount) in enumerate(amounts.items())]
    insert(db, "salesinvoices", sales("S1", subtotal="1000.00", status="partially_paid", payments=payments))
    summary = sync("v1")

    for i, (method, amount) in enumerate(amounts.items()):
        entry = the_entry(db, "S1", f"P-{method}")
        account = "cash" if method == "cash" else "bank"
        assert lines_of(entry) == {account: (D(amount), ZERO), "accounts_receivable": (ZERO, D(amount))}
        assert entry["date"] == utc(2026, 3, 2 + i)
    # receivable 1000 − (10+20+30+40+50+60 = 210) = 790; bank 20+30+40+50+60 = 200
    assert net(store) == {"accounts_receivable": D("790.00"), "cash": D("10.00"), "bank": D("200.00"),
                          "sales": D("-1000.00")}
    assert stats(summary)["synced"] == 7
    assert settlement_account("cash") == "cash" and settlement_account("cheque") == "bank"


def test_partial_payment_leaves_the_rest_receivable(db, store, sync):
    insert(db, "salesinvoices", sales("S1", subtotal="1000.00", taxTotal="180.00", status="partially_paid",
                                      payments=[payment("P1", "400.50", method="upi")]))
    sync("v1")
    assert net(store) == {"accounts_receivable": D("779.50"), "bank": D("400.50"), "sales": D("-1000.00"),
                          "output_tax": D("-180.00")}


def test_overpayment_makes_the_receivable_negative(db, store, sync):
    insert(db, "salesinvoices", sales("S1", subtotal="500.00", status="paid",
                                      payments=[payment("P1", "600.00", method="cash")]))
    summary = sync("v1")
    assert summary["stats"]["total"]["errors"] == 0
    assert net(store) == {"accounts_receivable": D("-100.00"), "cash": D("600.00"), "sales": D("-500.00")}
    assert summary["verification"]["receivables"] == {"ok": True, "ledger": "-100.00", "documents": "-100.00"}


def test_customer_refund_swaps_the_sides(db, store, sync):
    insert(db, "salesinvoices", sales("S1", subtotal="1000.00", status="paid", payments=[
        payment("P1", "1000.00", date=utc(2026, 3, 3), method="bank"),
        payment("R1", "-200.00", date=utc(2026, 3, 20), method="cash"),
    ]))
    sync("v1")
    refund = the_entry(db, "S1", "R1")
    assert lines_of(refund) == {"accounts_receivable": (D("200.00"), ZERO), "cash": (ZERO, D("200.00"))}
    assert refund["date"] == utc(2026, 3, 20)
    assert net(store) == {"accounts_receivable": D("200.00"), "bank": D("1000.00"), "cash": D("-200.00"),
                          "sales": D("-1000.00")}


def test_purchase_invoice_supplier_payment_and_refund(db, store, sync):
    # net 2000 − 200 = 1800; tax 18% of 1800 = 324; total 2124
    insert(db, "purchaseinvoices", purchase("B1", subtotal="2000.00", discountTotal="200.00", taxTotal="324.00",
                                            total="2124.00", status="partially_paid", invoiceDate=utc(2026, 2, 27),
                                            payments=[payment("P1", "1000.00", date=utc(2026, 3, 4), method="cash"),
                                                      payment("R1", "-100.00", date=utc(2026, 3, 6), method="upi")]))
    summary = sync("v1")

    bill = the_entry(db, "B1")
    assert lines_of(bill) == {"purchases": (D("1800.00"), ZERO), "input_tax": (D("324.00"), ZERO),
                              "accounts_payable": (ZERO, D("2124.00"))}
    assert bill["date"] == utc(2026, 2, 27) and bill["source"]["number"] == "BILL-B1"
    assert bill["source"]["type"] == "purchase_invoice"
    paid = the_entry(db, "B1", "P1")
    assert lines_of(paid) == {"accounts_payable": (D("1000.00"), ZERO), "cash": (ZERO, D("1000.00"))}
    assert paid["date"] == utc(2026, 3, 4)
    refund = the_entry(db, "B1", "R1")
    assert lines_of(refund) == {"bank": (D("100.00"), ZERO), "accounts_payable": (ZERO, D("100.00"))}
    # payable −2124 + 1000 − 100 = −1224
    assert net(store) == {"purchases": D("1800.00"), "input_tax": D("324.00"), "accounts_payable": D("-1224.00"),
                          "cash": D("-1000.00"), "bank": D("100.00")}
    assert stats(summary, "purchase_invoices") == {"scanned": 1, "synced": 3, "reversed": 0, "skipped": 0,
                                                   "errors": 0}
    assert summary["verification"]["payables"] == {"ok": True, "ledger": "1224.00", "documents": "1224.00"}


def test_expenses_paid_by_cash_and_bank_and_unpaid(db, store, sync):
    insert(db, "expenses",
           expense("E1", amount="15000.00", taxAmount="2700.00", category="Office Rent", paymentMethod="cash",
                   date=utc(2026, 3, 1)),
           expense("E2", amount="500.00", taxAmount="0", category="  misc  ", paymentMethod="card",
                   date=utc(2026, 3, 2)),
           expense("E3", amount="1200.00", taxAmount="216.00", category="Repairs_Maintenance",
                   paymentStatus="unpaid", paymentMethod=None, date=utc(2026, 3, 3)))
    summary = sync("v1")

    assert lines_of(the_entry(db, "E1")) == {"expenses:office-rent": (D("15000.00"), ZERO),
                                             "input_tax": (D("2700.00"), ZERO), "cash": (ZERO, D("17700.00"))}
    assert lines_of(the_entry(db, "E2")) == {"expenses:misc": (D("500.00"), ZERO), "bank": (ZERO, D("500.00"))}
    unpaid = the_entry(db, "E3")
    assert lines_of(unpaid) == {"expenses:repairs-maintenance": (D("1200.00"), ZERO),
                                "input_tax": (D("216.00"), ZERO), "accounts_payable": (ZERO, D("1416.00"))}
    assert unpaid["date"] == utc(2026, 3, 3) and unpaid["source"]["type"] == "expense"
    assert net(store) == {
        "expenses:office-rent": D("15000.00"), "expenses:misc": D("500.00"),
        "expenses:repairs-maintenance": D("1200.00"), "input_tax": D("2916.00"),
        "cash": D("-17700.00"), "bank": D("-500.00"), "accounts_payable": D("-1416.00"),
    }
    assert stats(summary, "expenses") == {"scanned": 3, "synced": 3, "reversed": 0, "skipped": 0, "errors": 0}
    chart = {account["key"]: account for account in store.accounts.chart("v1")}
    assert chart["expenses:office-rent"]["type"] == "expense"
    assert chart["expenses:repairs-maintenance"]["type"] == "expense"
    assert {chart[k]["type"] for k in ("cash", "bank", "input_tax")} == {"asset"}
    assert chart["accounts_payable"]["type"] == "liability"
    assert summary["verification"]["payables"]["documents"] == "1416.00"


@pytest.mark.parametrize("category, key", [
    ("Office Rent", "expenses:office-rent"),
    ("  misc  ", "expenses:misc"),
    ("Repairs_Maintenance", "expenses:repairs-maintenance"),
    ("Travel & Meals", "expenses:travel-meals"),
    ("--IT / Software (2026)--", "expenses:it-software-2026"),
    ("UTILITIES", "expenses:utilities"),
    ("Café", "expenses:caf"),
])
def test_category_slugs(category, key):
    assert expense_account_key(category) == key
    assert category_slug(category) == key.split(":", 1)[1]


def test_same_category_spelled_differently_posts_to_one_account(db, store, sync):
    insert(db, "expenses", expense("E1", amount="100.00", category="Office Rent"),
           expense("E2", amount="50.00", category="office rent "),
           expense("E3", amount="25.00", category="OFFICE-RENT"))
    sync("v1")
    assert net(store) == {"expenses:office-rent": D("175.00"), "bank": D("-175.00")}


@pytest.mark.parametrize("kind, total, round_off", [
    ("sales", "118.01", (ZERO, D("0.01"))),      # receivable a cent above its parts: round_off credited
    ("sales", "117.99", (D("0.01"), ZERO)),      # a cent below: round_off debited
    ("purchase", "118.01", (D("0.01"), ZERO)),   # payable a cent above: round_off debited
    ("purchase", "117.99", (ZERO, D("0.01"))),
])
def test_round_off_of_at_most_a_cent_both_directions(db, store, sync, kind, total, round_off):
    build, collection = (sales, "salesinvoices") if kind == "sales" else (purchase, "purchaseinvoices")
    insert(db, collection, build("X1", subtotal="100.00", taxTotal="18.00", total=total))
    summary = sync("v1")
    assert summary["stats"]["total"]["errors"] == 0
    lines = lines_of(the_entry(db, "X1"))
    if kind == "sales":
        assert lines.pop("accounts_receivable") == (D(total), ZERO)
        assert lines.pop("sales") == (ZERO, D("100.00"))
        assert lines.pop("output_tax") == (ZERO, D("18.00"))
    else:
        assert lines.pop("accounts_payable") == (ZERO, D(total))
        assert lines.pop("purchases") == (D("100.00"), ZERO)
        assert lines.pop("input_tax") == (D("18.00"), ZERO)
    assert lines == {"round_off": round_off}
    chart = {account["key"]: account for account in store.accounts.chart("v1")}
    assert chart["round_off"]["type"] == "expense"
    assert sum(net(store).values()) == 0


def test_zero_lines_are_left_out_and_all_zero_entries_not_posted(db, store, sync):
    insert(db, "salesinvoices",
           sales("S1", subtotal="100.00", taxTotal="0.00"),                          # no output_tax line
           sales("S2", subtotal="0.00", total="0", status="paid",                    # nothing at all
                 payments=[payment("P0", "0.00")]),
           sales("S3", subtotal="50.00", status="paid", payments=[payment("P1", 0), payment("P2", "50")]))
    insert(db, "expenses", expense("E1", amount="0.00", taxAmount="0.00"),
           expense("E2", amount="0.00", taxAmount="9.00", paymentStatus="unpaid", paymentMethod=None))
    summary = sync("v1")

    assert lines_of(the_entry(db, "S1")) == {"accounts_receivable": (D("100.00"), ZERO), "sales": (ZERO, D("100.00"))}
    assert entries(db, **{"source.id": "S2"}) == []
    assert entries(db, **{"source.id": "E1"}) == []
    assert [e["source"].get("paymentId") for e in entries(db, **{"source.id": "S3"})] == [None, "P2"]
    assert lines_of(the_entry(db, "E2")) == {"input_tax": (D("9.00"), ZERO), "accounts_payable": (ZERO, D("9.00"))}
    for entry in entries(db):
        for line in entry["lines"]:
            assert line["debit"].to_decimal() + line["credit"].to_decimal() > 0
    total = stats(summary)
    assert total["errors"] == 0 and total["scanned"] == 5
    assert total["synced"] == 4   # S1, S3, S3/P2, E2
    assert total["skipped"] == 2  # S2 and E1 have nothing to post
    assert net(store) == {"accounts_receivable": D("100.00"), "sales": D("-150.00"), "bank": D("50.00"),
                          "input_tax": D("9.00"), "accounts_payable": D("-9.00")}


@pytest.mark.parametrize("status", ["draft", "void", "cancelled", "deleted"])
def test_non_posting_documents_post_nothing_payments_included(db, store, sync, status):
    flags = {"isDeleted": True, "status": "paid"} if status == "deleted" else {"status": status}
    insert(db, "salesinvoices", sales("S1", subtotal="1000.00", payments=[payment("P1", "1000.00")], **flags),
           sales("S-ok", subtotal="10.00"))
    insert(db, "purchaseinvoices", purchase("B1", subtotal="700.00", payments=[payment("P2", "300.00")], **flags))
    if status == "deleted":
        insert(db, "expenses", expense("E1", amount="90.00", isDeleted=True))
    summary = sync("v1")

    assert [e["source"]["id"] for e in entries(db)] == ["S-ok"]
    assert net(store) == {"accounts_receivable": D("10.00"), "sales": D("-10.00")}
    total = stats(summary)
    assert total["errors"] == 0 and total["synced"] == 1 and total["reversed"] == 0
    assert total["scanned"] == (4 if status == "deleted" else 3)
    assert_books_balance(db, store)


def test_money_in_every_bson_type_posts_the_same_amounts(db, store, sync):
    insert(db, "salesinvoices",
           sales("S1", subtotal=1000, discountTotal=0.1, taxTotal=Decimal128("179.98"), total="1179.88",
                 payments=[payment("P1", 0.1 + 0.2, method="cash")]),
           sales("S2", subtotal="2.675", discountTotal="0", taxTotal=0, total=2.675))  # 2.68 both ways
    sync("v1")
    assert lines_of(the_entry(db, "S1")) == {"accounts_receivable": (D("1179.88"), ZERO),
                                             "sales": (ZERO, D("999.90")), "output_tax": (ZERO, D("179.98"))}
    assert lines_of(the_entry(db, "S1", "P1")) == {"cash": (D("0.30"), ZERO), "accounts_receivable": (ZERO, D("0.30"))}
    assert lines_of(the_entry(db, "S2")) == {"accounts_receivable": (D("2.68"), ZERO), "sales": (ZERO, D("2.68"))}


def test_invoice_numbers_are_not_identity(db, store, sync):
    """Two invoices with the same number are two documents; entries are tied to `_id`."""
    insert(db, "salesinvoices", sales("S1", subtotal="100.00", number="INV-1"),
           sales("S2", subtotal="200.00", number="INV-1"))
    insert(db, "purchaseinvoices", purchase("S1", subtotal="40.00", number="INV-1"))  # same _id, other type
    summary = sync("v1")
    assert stats(summary)["synced"] == 3
    assert net(store) == {"accounts_receivable": D("300.00"), "sales": D("-300.00"), "purchases": D("40.00"),
                          "accounts_payable": D("-40.00")}


def test_ids_of_different_bson_types_are_different_documents(db, store, sync):
    insert(db, "salesinvoices", sales(1, subtotal="100.00"), sales("1", subtotal="250.00"))
    summary = sync("v1")
    assert stats(summary)["synced"] == 2
    assert net(store) == {"accounts_receivable": D("350.00"), "sales": D("-350.00")}
