"""Adding a kind of source document takes one module: here, inside this test file, sales credit notes.

Nothing else is edited: the kind is registered, and the real flow (real server, real Prefect)
syncs it as a step of its own — posting, change, reversal, statistics, verification.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ledger import accounts as acc
from ledger.entries import EntryDraft, Line
from ledger.kinds import Side, SourceKind, kind_steps, register, unregister
from ledger.kinds import reading as r
from ledger.posting import draft
from ledger.sources import ReadDocument, SourceDocument, Withdrawn
from tests.factories import D, assert_books_balance, entries, insert, net, sales, stats, utc

TYPE = "sales_credit_note"


class CreditNote(SourceDocument):
    amount: Decimal


def read(raw: dict[str, Any], base_currency: str) -> ReadDocument:
    def read_note(vendor_id: str, number: str | None) -> ReadDocument:
        updated_at = r.optional_date(raw.get("updatedAt"))
        if r.truthy(raw.get("isDeleted")) or raw.get("status") == "void":
            return Withdrawn(type=TYPE, id=raw["_id"], vendor_id=vendor_id, number=number, reason="voided",
                             updated_at=updated_at)
        r.check_currency(raw, base_currency)
        return CreditNote(type=TYPE, id=raw["_id"], vendor_id=vendor_id, number=number, date=r.date(raw, "date"),
                          updated_at=updated_at, party=r.party(raw, "customer"), amount=r.amount(raw, "amount"))

    return r.read_or_reject(TYPE, "noteNumber", raw, read_note)


def drafts(note: CreditNote) -> list[EntryDraft]:
    """A credit note gives sales back: debit sales, credit the customer's receivable."""
    return [draft(note, note.date, [Line(account=acc.SALES, debit=note.amount),
                                    Line(account=acc.ACCOUNTS_RECEIVABLE, credit=note.amount)])]


CREDIT_NOTES = SourceKind(type=TYPE, step="sales_credit_notes", label="Sales credit notes", noun="Sales credit note",
                          collection="salescreditnotes", date_field="date", side=Side.RECEIVABLE,
                          party_label="customer", read=read, drafts=drafts, open_amount=lambda note: -note.amount,
                          order=40)


@pytest.fixture
def credit_notes(db):
    from flows.database import reset_clients

    register(CREDIT_NOTES)
    reset_clients()  # indexes and collection settings for the new kind
    yield CREDIT_NOTES
    unregister(TYPE)
    reset_clients()


def note(doc_id, amount, **extra) -> dict:
    return {"_id": doc_id, "vendorId": "v1", "noteNumber": f"CN-{doc_id}", "date": utc(2026, 3, 20),
            "amount": amount, "customer": {"id": "c1", "name": "Asha Traders"}, "currency": "INR",
            "updatedAt": utc(2026, 3, 21), **extra}


def test_a_fourth_kind_registered_in_a_test_syncs_end_to_end(db, credit_notes, store, sync):
    assert kind_steps()[-1] == "sales_credit_notes"
    insert(db, "salesinvoices", sales("S1", subtotal="1000.00"), sales("S2", subtotal="400.00"))
    insert(db, "salescreditnotes", note("CN1", "150.00"), note("CN2", "50.00"), note("CN-bad", "lots"))

    first = sync("v1")
    assert first["state"] == "completed", first
    assert stats(first, "sales_credit_notes") == {"scanned": 3, "synced": 2, "reversed": 0, "skipped": 0,
                                                  "errors": 1}
    assert stats(first)["synced"] == 4
    assert net(store) == {"accounts_receivable": D("1200.00"), "sales": D("-1200.00")}
    assert first["verification"]["receivables"] == {"ok": True, "ledger": "1200.00", "documents": "1200.00"}
    run = store.runs.get(first["syncId"])
    assert list(run.steps) == ["check_existing", "sales_invoices", "purchase_invoices", "expenses",
                               "sales_credit_notes", "complete"]
    assert run.steps["sales_credit_notes"].state == "completed"
    (rejected,) = db.ledger_sync_errors.find({"syncId": first["syncId"]})
    assert (rejected["sourceType"], rejected["sourceId"], rejected["field"]) == (TYPE, "CN-bad", "amount")
    posted = entries(db, **{"source.type": TYPE})
    assert {e["source"]["party"]["name"] for e in posted} == {"Asha Traders"}

    # Changed and voided in the app: reversed and reposted, reversed.
    db.salescreditnotes.update_one({"_id": "CN1"}, {"$set": {"amount": "175.00", "updatedAt": utc(2026, 4, 1)}})
    db.salescreditnotes.update_one({"_id": "CN2"}, {"$set": {"status": "void", "updatedAt": utc(2026, 4, 2)}})
    db.salescreditnotes.update_one({"_id": "CN-bad"}, {"$set": {"isDeleted": True, "updatedAt": utc(2026, 4, 3)}})
    changed = sync("v1", full=True)
    assert changed["state"] == "completed", changed
    assert stats(changed, "sales_credit_notes") == {"scanned": 3, "synced": 1, "reversed": 2, "skipped": 1,
                                                    "errors": 0}
    assert net(store) == {"accounts_receivable": D("1225.00"), "sales": D("-1225.00")}
    assert_books_balance(db, store)

    # Only the new kind, selectively: its step runs, the others are skipped.
    only = sync("v1", types=["sales_credit_notes"], full=True)
    assert only["state"] == "completed" and stats(only)["synced"] == 0
    assert store.runs.get(only["syncId"]).steps["sales_invoices"].state == "skipped"
