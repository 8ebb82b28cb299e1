"""Reading the books (SPEC §8) of a synced vendor: every report agrees with the trial balance, the
reads use indexes, the Beancount export passes bean-check with the same balances, and each
document's history names why every reversal was written."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal

import pytest

from cli.demo_data import load
from flows.books import (
    accounts_view,
    aging_view,
    balance_sheet_view,
    export_chunks,
    history_view,
    ledger_view,
    profit_and_loss_view,
)
from ledger.kinds import Side
from ledger.reports import trial_balance_document
from ledger.verification import trial_balance
from tests.factories import D, expense, insert, payment, sales, utc

DAYS = [date(2026, 1, 31), date(2026, 3, 15), date(2026, 6, 30), date(2027, 1, 1)]


@pytest.fixture
def books(db, store, sync):
    """The demo vendor synced, then changed (a void, an edit, a removed payment) and synced again."""
    load(db, ["demo"], documents=80)
    assert sync("demo")["state"] == "completed"
    first = db.salesinvoices.find_one({"vendorId": "demo", "status": "paid", "payments.0": {"$exists": True}})
    db.salesinvoices.update_one({"_id": first["_id"]}, {"$set": {"payments": [], "status": "issued",
                                                                  "updatedAt": utc(2026, 7, 1)}})
    assert sync("demo", full=True)["state"] == "completed"
    return store


def as_of_tb(store, day):
    return trial_balance(store.books.as_of("demo", day)).balances


def test_reports_ledgers_and_export_of_a_synced_vendor_agree_with_the_trial_balance(books, tmp_path, capsys):
    """One synced vendor for all of them: a sync of the demo data is the slow part."""
    store = books
    _reports_agree(store)
    _ledgers_page_by_cursor(store)
    _beancount_passes_bean_check(store, tmp_path)
    _cli_prints_the_routes_shapes(store, tmp_path, capsys)


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from cli.main import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _cli_prints_the_routes_shapes(store, tmp_path, capsys):
    capsys.readouterr()
    code, out, _ = _cli(capsys, "ledger", "--vendor", "demo", "--account", "bank", "--from", "2026-02-01", "--json")
    assert code == 0 and json.loads(out) == {**ledger_view(store, "demo", "bank", date(2026, 2, 1), None, 1000),
                                             "nextCursor": None}
    code, out, _ = _cli(capsys, "report", "pnl", "--vendor", "demo", "--from", "2026-02-01", "--to", "2026-06-30",
                        "--json")
    assert code == 0 and json.loads(out) == profit_and_loss_view(store, "demo", date(2026, 2, 1), date(2026, 6, 30))
    code, out, _ = _cli(capsys, "report", "balance-sheet", "--vendor", "demo", "--as-of", "2026-03-15", "--json")
    assert code == 0 and json.loads(out) == balance_sheet_view(store, "demo", date(2026, 3, 15))
    code, out, _ = _cli(capsys, "report", "aging", "--vendor", "demo", "--side", "payable", "--as-of", "2026-06-30")
    assert code == 0 and "Total" in out and "," in out  # a table with thousands separators
    entry = store.entries.collection.find_one({"vendorId": "demo", "reversalOf": {"$exists": True}})
    code, out, _ = _cli(capsys, "history", "--vendor", "demo", "--type", entry["source"]["type"], "--id",
                        str(entry["source"]["id"]), "--json")
    assert code == 0 and any(e["reason"] for e in json.loads(out)["entries"])
    target = tmp_path / "cli.beancount"
    code, out, _ = _cli(capsys, "export", "--vendor", "demo", "--format", "beancount", "-o", str(target), "--json")
    assert code == 0 and json.loads(out)["file"] == str(target) and target.read_text().startswith("option")
    for args in (("report", "pnl", "--vendor", "nobody"), ("ledger", "--vendor", "nobody", "--account", "bank"),
                 ("history", "--vendor", "nobody", "--type", "expense", "--id", "x"),
                 ("export", "--vendor", "nobody", "--format", "csv")):
        code, out, err = _cli(capsys, *args)
        assert code == 2 and "unknown vendor" in err and out == "", args
    with pytest.raises(SystemExit) as bad_date:
        _cli(capsys, "report", "pnl", "--vendor", "demo", "--from", "2026-13-01")
    assert bad_date.value.code == 2


def _reports_agree(store):
    for day in DAYS:
        tb = as_of_tb(store, day)
        sheet = balance_sheet_view(store, "demo", day)
        assert sheet["totalAssets"] == sheet["totalLiabilitiesAndEquity"]
        for side, account in ((Side.RECEIVABLE, "accounts_receivable"), (Side.PAYABLE, "accounts_payable")):
            aging = aging_view(store, "demo", side, day)
            expected = tb.get(account, D(0)) * (1 if side is Side.RECEIVABLE else -1)
            assert D(aging["total"]) == expected
            assert sum(D(row["total"]) for row in aging["parties"]) == expected
    # P&L of a period = the change of retained earnings over it
    start, end = date(2026, 2, 1), date(2026, 6, 30)
    pnl = profit_and_loss_view(store, "demo", start, end)
    before = balance_sheet_view(store, "demo", start - timedelta(days=1))["equity"]["retained_earnings"]
    after = balance_sheet_view(store, "demo", end)["equity"]["retained_earnings"]
    assert D(pnl["netProfit"]) == D(after) - D(before)
    chart = accounts_view(store, "demo")["accounts"]
    assert {row["key"]: D(row["balance"]) for row in chart if D(row["balance"])} == \
        trial_balance(store.books.current("demo")).balances
    assert len({row["code"] for row in chart}) == len(chart), "account codes are unique"


def _ledgers_page_by_cursor(store):
    for account in ("accounts_receivable", "bank"):
        day_from, day_to = date(2026, 2, 1), date(2026, 6, 30)
        page = ledger_view(store, "demo", account, day_from, day_to, limit=7)
        lines, pages = list(page["lines"]), 1
        while page["nextCursor"]:
            page = ledger_view(store, "demo", account, day_from, day_to, limit=7, cursor=page["nextCursor"])
            lines += page["lines"]
            pages += 1
        assert pages > 2
        assert len({line["entryId"] for line in lines}) == len(lines)
        assert [line["date"] for line in lines] == sorted(line["date"] for line in lines)
        opening = D(page["openingBalance"])
        assert opening == as_of_tb(store, day_from - timedelta(days=1)).get(account, D(0))
        running = opening
        for line in lines:
            running += D(line["debit"]) - D(line["credit"])
            assert D(line["balance"]) == running
        assert running == D(page["closingBalance"]) == as_of_tb(store, day_to).get(account, D(0))


def _beancount_passes_bean_check(store, tmp_path):
    from beancount import loader
    from beancount.core import realization

    path = tmp_path / "books.beancount"
    path.write_text("".join(export_chunks(store, "demo", "beancount", None, None)))
    check = subprocess.run([sys.executable, "-m", "beancount.scripts.check", str(path)], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    entries, errors, _ = loader.load_file(str(path))
    assert not errors
    real = realization.realize(entries)
    tb = trial_balance_document("demo", trial_balance(store.books.current("demo")))
    from ledger.export import beancount_account
    from ledger.reports import account_views

    views = account_views(tb["balances"], store.accounts.chart("demo"))
    for key, amount in tb["balances"].items():
        node = realization.get(real, beancount_account(key, views[key]["type"]))
        assert node.balance.get_currency_units("INR").number == Decimal(amount), key
    rows = list(export_chunks(store, "demo", "csv", None, None))
    assert rows[0].startswith("entryId,date,account,debit,credit")
    assert len(rows) - 1 == sum(len(e["lines"]) for e in store.entries.collection.find({"vendorId": "demo"}))


def test_each_reversal_in_a_documents_history_says_why(db, store, sync):
    insert(db, "salesinvoices",
           sales("void-me"), sales("edit-me"), sales("move-me"),
           sales("pay-off", status="paid", payments=[payment("p1", "1000.00")]), sales("delete-me"))
    insert(db, "expenses", expense("x1"))
    sync("v1")
    db.salesinvoices.update_one({"_id": "void-me"}, {"$set": {"status": "void", "updatedAt": utc(2026, 4, 1)}})
    db.salesinvoices.update_one({"_id": "edit-me"}, {"$set": {"subtotal": "1200.00", "total": "1200.00",
                                                               "updatedAt": utc(2026, 4, 1)}})
    db.salesinvoices.update_one({"_id": "move-me"}, {"$set": {"invoiceDate": utc(2026, 3, 20),
                                                               "updatedAt": utc(2026, 4, 1)}})
    db.salesinvoices.update_one({"_id": "pay-off"}, {"$set": {"payments": [], "status": "issued",
                                                               "updatedAt": utc(2026, 4, 1)}})
    db.salesinvoices.delete_one({"_id": "delete-me"})
    sync("v1", full=True)

    def reasons(doc_id):
        history = history_view(store, "v1", "sales_invoice", doc_id)
        return [(entry["reason"], tuple(entry["changed"])) for entry in history["entries"] if entry["reversalOf"]]

    assert reasons("void-me") == [("voided", ())]
    assert reasons("delete-me") == [("deleted", ())]
    assert reasons("pay-off") == [("payment removed", ())]
    assert reasons("edit-me")[0][0] == "changed" and "total" in str(reasons("edit-me"))
    assert reasons("move-me") == [("changed", ("invoiceDate",))]
    history = history_view(store, "v1", "sales_invoice", "edit-me")["entries"]
    assert [entry["reversalOf"] is not None for entry in history] == [False, True, False]  # in the order written
    assert all(entry["syncId"] for entry in history)
    assert history_view(store, "v2", "sales_invoice", "edit-me")["entries"] == []


def _plan(explained: dict) -> str:
    return str(explained.get("queryPlanner", {}).get("winningPlan") or explained)


def test_the_per_request_reads_use_indexes_and_never_sort_or_skip(db, store, sync, monkeypatch):
    """Each read of a ledger page, the export, a history and the aging is an index range; a page's range
    holds about a page, and a later page starts its index bounds at its cursor (keyset), never re-reading
    the pages before it. (The export
    reads `by_date_id` in its order, no sort stage: it streams.)"""
    insert(db, "salesinvoices", *[sales(f"s{i:02d}", status="paid", invoiceDate=utc(2026, 3, 1 + i % 28),
                                        payments=[payment(f"p{i}", "1000.00", date=utc(2026, 3, 1 + i % 28))])
                                  for i in range(40)])
    sync("v1")
    cursors: list = []
    real_find = store.entries.collection.find

    def find(*args, **kwargs):
        cursors.append(real_find(*args, **kwargs))
        return cursors[-1]

    monkeypatch.setattr(store.entries.collection, "find", find)
    first = ledger_view(store, "v1", "bank", date(2026, 3, 1), date(2026, 3, 31), limit=5)
    # the first page reads the days that hold its lines (the days' line counts say which), not the month's 40
    assert cursors[-1].clone().explain()["executionStats"]["totalKeysExamined"] <= 12
    last = first
    while last["nextCursor"]:
        last = ledger_view(store, "v1", "bank", date(2026, 3, 1), date(2026, 3, 31), limit=5,
                           cursor=last["nextCursor"])
    assert D(last["closingBalance"]) == D("40000.00") and len(last["lines"]) == 5
    final = cursors[-1].clone().explain()
    assert "IXSCAN" in _plan(final) and "by_account" in _plan(final)
    # the last page's index bounds start at its cursor: it reads its own lines, not the 35 before them
    assert final["executionStats"]["totalKeysExamined"] <= 12, final["executionStats"]
    cursors.clear()
    list(export_chunks(store, "v1", "csv", None, None))
    history_view(store, "v1", "sales_invoice", "s01")
    explained = [cursor.clone().explain() for cursor in cursors]
    assert len(explained) == 2 and all("IXSCAN" in _plan(plan) for plan in explained)
    assert "by_date_id" in _plan(explained[0]) and "SORT" not in _plan(explained[0])
    aging = db.command("aggregate", store.entries.collection.name, explain=True, hint="by_account", pipeline=[
        {"$match": {"vendorId": "v1", "lines.account": "accounts_receivable", "date": {"$lt": utc(2026, 4, 1)}}}])
    assert "IXSCAN" in str(aging) and "by_account" in str(aging)
