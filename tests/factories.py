"""Source documents in the shapes of SPEC §2, and the checks an accountant runs on the result.

Builders take the money fields as given (strings, floats, Decimal128...), so a
test states exactly what the business app stored. Expected numbers live in the
tests, worked out by hand from the SPEC §3 table.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal

from bson.decimal128 import Decimal128

D = Decimal


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


INVOICE_DATE = utc(2026, 3, 1)
UPDATED = utc(2026, 3, 2, 9, 30)


def payment(pid, amount, date=utc(2026, 3, 10), method="bank", **extra) -> dict:
    return {"_id": pid, "amount": amount, "date": date, "method": method, "reference": f"REF-{pid}", **extra}


def invoice(doc_id, *, vendor="v1", kind="sales", subtotal="1000.00", discountTotal="0.00", taxTotal="0.00",
            total=None, status="issued", payments=(), invoiceDate=INVOICE_DATE, updatedAt=UPDATED, items=None,
            currency="INR", number=None, **extra) -> dict:
    """A sales (kind="sales") or purchase (kind="purchase") invoice. `total` defaults to
    subtotal − discountTotal + taxTotal, computed here in Decimal."""
    if total is None:
        total = str(_dec(subtotal) - _dec(discountTotal) + _dec(taxTotal))
    document = {
        "_id": doc_id, "vendorId": vendor, "invoiceDate": invoiceDate, "currency": currency,
        "subtotal": subtotal, "discountTotal": discountTotal, "taxTotal": taxTotal, "total": total,
        "status": status, "payments": list(payments), "isDeleted": False,
        "createdAt": utc(2026, 3, 1), "updatedAt": updatedAt,
    }
    if items is not None:
        document["items"] = items
    if kind == "sales":
        document["invoiceNumber"] = number or f"INV-{doc_id}"
        document["customer"] = {"id": "c1", "name": "Asha Traders"}
    else:
        document["billNumber"] = number or f"BILL-{doc_id}"
        document["supplier"] = {"id": "s1", "name": "Metro Wholesale"}
    if updatedAt is None:
        del document["updatedAt"]
    document.update(extra)
    return document


def sales(doc_id, **kwargs) -> dict:
    return invoice(doc_id, kind="sales", **kwargs)


def purchase(doc_id, **kwargs) -> dict:
    return invoice(doc_id, kind="purchase", **kwargs)


def expense(doc_id, *, vendor="v1", amount="100.00", taxAmount="0.00", category="Office Rent",
            paymentStatus="paid", paymentMethod="bank", date=utc(2026, 3, 5), updatedAt=UPDATED, **extra) -> dict:
    document = {
        "_id": doc_id, "vendorId": vendor, "date": date, "category": category, "description": f"expense {doc_id}",
        "amount": amount, "taxAmount": taxAmount, "paymentStatus": paymentStatus, "isDeleted": False,
        "createdAt": utc(2026, 3, 1), "updatedAt": updatedAt,
    }
    if paymentMethod is not None:
        document["paymentMethod"] = paymentMethod
    if updatedAt is None:
        del document["updatedAt"]
    document.update(extra)
    return document


def _dec(value) -> Decimal:
    if isinstance(value, Decimal128):
        return value.to_decimal()
    return Decimal(str(value))


# ---- reading the ledger back ---------------------------------------------------

COLLECTION = {"sales": "salesinvoices", "purchase": "purchaseinvoices", "expense": "expenses"}


def insert(db, collection: str, *documents: dict) -> None:
    db[collection].insert_many([copy.deepcopy(d) for d in documents])


def entries(db, vendor="v1", **query) -> list[dict]:
    return list(db.ledger_entries.find({"vendorId": vendor, **query}).sort("_id", 1))


def lines_of(entry: dict) -> dict[str, tuple[Decimal, Decimal]]:
    """account → (debit, credit) of one stored entry; the amounts must be Decimal128."""
    result = {}
    for line in entry["lines"]:
        assert isinstance(line["debit"], Decimal128) and isinstance(line["credit"], Decimal128), line
        assert line["account"] not in result, f"account twice in one entry: {entry}"
        result[line["account"]] = (line["debit"].to_decimal(), line["credit"].to_decimal())
    return result


def assert_balanced(entry: dict) -> None:
    lines = lines_of(entry)
    debit = sum((d for d, _ in lines.values()), D(0))
    credit = sum((c for _, c in lines.values()), D(0))
    assert debit == credit, entry
    for d, c in lines.values():
        assert d >= 0 and c >= 0 and (d == 0) != (c == 0), f"a line is negative, zero or two-sided: {entry}"


def net(store, vendor="v1") -> dict[str, Decimal]:
    """The trial balance: debits − credits per account, zero balances left out."""
    return store.entries.balances(vendor).net_balances()


def assert_books_balance(db, store, vendor="v1") -> None:
    for entry in entries(db, vendor):
        assert_balanced(entry)
    assert sum(net(store, vendor).values(), D(0)) == 0


SPEC_COUNTERS = ("scanned", "synced", "reversed", "skipped", "errors")


def stats(summary: dict, kind: str = "total") -> dict:
    """The SPEC §5 counters of a sync (`late`, beside them, has its own assertions)."""
    counts = summary["stats"][kind]
    assert set(SPEC_COUNTERS) <= set(counts), counts
    return {name: counts[name] for name in SPEC_COUNTERS}


def errors(db, sync_id: str | None = None) -> list[dict]:
    query = {} if sync_id is None else {"syncId": sync_id}
    return list(db.ledger_sync_errors.find(query))


# ---- faults and edits while a sync writes -------------------------------------------

def after_each_batch(monkeypatch, hook) -> None:
    """Call `hook(batch)` right after each batch a sync writes has committed (a `BatchWrite`:
    `.source_type`, `.entries` as stored, ...); `monkeypatch.undo()` or the test's end restores."""
    import flows.document_step as document_step

    original = document_step.write_batch

    def write_then_hook(store, batch):
        run = original(store, batch)
        hook(batch)
        return run

    monkeypatch.setattr(document_step, "write_batch", write_then_hook)
