"""Hostile and odd `_id`s: any BSON type a collection can hold syncs, no two documents ever share an
entry id, and a collision or a failed check is never reported as success."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime

from bson import Decimal128, Int64, ObjectId
from bson.binary import Binary
from hypothesis import given
from hypothesis import strategies as st

from flows import progress
from ledger.ids import id_key, posting_id, rejection_id, reversal_id, unit_key, value_of_key
from tests.factories import (
    D,
    after_each_batch,
    assert_books_balance,
    entries,
    expense,
    insert,
    net,
    payment,
    purchase,
    sales,
    stats,
)

OID = ObjectId("65f1c2a0b1d2e3f405162738")
EVERY_KIND_OF_ID = [
    OID, str(OID),  # an ObjectId and its hex string: two documents
    7, "int:7", "7",  # the int 7, and the strings that used to read like it
    Int64(2**40), 2.5, Decimal128("3.25"),
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    Binary(uuid.UUID("12345678-1234-5678-1234-567812345678").bytes, 4), Binary(b"\x00\x01raw", 0),
    {"k": 1}, {"k": 1, "region": "south"}, True,
    "X1|Y", "a/reversal", "hash#1", "percent%7C", "unicodé ✓", "",
]


def _invoices() -> list[dict]:
    """One sales invoice per kind of id, each worth a different amount; plus the pair whose
    payment id used to collide with another invoice's id (`"X1"` paid by `"Y|-"` against `"X1|Y"`)."""
    documents = [sales(doc_id, subtotal=f"{100 + index}.00", number=f"INV-{index}")
                 for index, doc_id in enumerate(EVERY_KIND_OF_ID)]
    documents.append(sales("X1", subtotal="50.00", status="partially_paid", payments=[payment("Y|-", "20.00")]))
    return documents


def _expected_receivable() -> D:
    return sum((D(f"{100 + index}.00") for index in range(len(EVERY_KIND_OF_ID))), D(0)) + D("30.00")


def test_every_bson_id_type_syncs_exactly_once_full_and_incremental(db, store, sync):
    insert(db, "salesinvoices", *_invoices())
    insert(db, "purchaseinvoices", purchase({"k": 1}, subtotal="40.00"), purchase(OID, subtotal="60.00"))
    insert(db, "expenses", expense(Int64(2**40), amount="15.00"), expense({"nested": {"deep": [1, 2]}}, amount="5.00"))

    first = sync("v1", full=True)
    assert first["state"] == "completed", first
    assert stats(first)["errors"] == 0
    posted = entries(db)
    # one entry per invoice, one for the X1 payment, two purchases, two expenses
    assert len(posted) == len(EVERY_KIND_OF_ID) + 2 + 2 + 2 == stats(first)["synced"]
    assert len({entry["_id"] for entry in posted}) == len(posted)
    assert net(store)["accounts_receivable"] == _expected_receivable()
    assert net(store)["accounts_payable"] == D("-100.00")
    assert_books_balance(db, store)

    for full in (False, True):  # nothing changed: nothing posted, whatever the id types
        again = sync("v1", full=full)
        assert again["state"] == "completed" and stats(again)["synced"] == 0 and stats(again)["reversed"] == 0
    assert entries(db) == posted

    # Change, void and hard-delete documents of the odd types: each reaches its own entries only.
    db.salesinvoices.update_one({"_id": {"k": 1}}, {"$set": {"subtotal": "999.00", "total": "999.00",
                                                             "updatedAt": datetime.now(UTC)}})
    db.salesinvoices.update_one({"_id": str(OID)}, {"$set": {"status": "void", "updatedAt": datetime.now(UTC)}})
    db.salesinvoices.delete_one({"_id": 7})
    changed = sync("v1", full=True)
    assert changed["state"] == "completed", changed
    assert stats(changed)["synced"] == 1 and stats(changed)["reversed"] == 3
    index = {repr(doc_id): 100 + number for number, doc_id in enumerate(EVERY_KIND_OF_ID)}
    expected = _expected_receivable() - D(index[repr({"k": 1})]) + D("999.00") - D(index[repr(str(OID))]) \
        - D(index[repr(7)])
    assert net(store)["accounts_receivable"] == expected
    assert_books_balance(db, store)


def test_an_entry_id_taken_by_another_posting_fails_the_sync_instead_of_counting_it_posted(db, store, sync):
    insert(db, "salesinvoices", sales("S1", subtotal="100.00"))
    # Something else wrote an entry under the id the sync will use, for another document.
    stolen = posting_id(unit_key("v1", "sales_invoice", "S1"), 1)
    db.ledger_entries.insert_one({"_id": stolen, "vendorId": "v1", "date": datetime(2026, 3, 1, tzinfo=UTC),
                                  "source": {"type": "sales_invoice", "id": "OTHER"}, "lines": [],
                                  "fingerprint": "x", "syncId": "elsewhere"})
    try:
        summary = sync("v1")
    except Exception as error:  # noqa: BLE001 - the flow raises; the run record says why
        summary = {"state": "failed", "error": str(error)}
    assert summary["state"] == "failed"
    run = db.ledger_sync_runs.find_one({"vendorId": "v1"})
    assert run["state"] == "failed" and "already taken by a different posting" in run["error"]


def test_entries_removed_behind_the_syncs_back_fail_it_loudly_and_tell_the_room(db, store, sync, monkeypatch):
    """The check in `complete` is on what the database holds, not on what the sync meant to write."""
    from flows.database import reset_clients

    monkeypatch.setenv("LEDGER_BATCH_SIZE", "2")
    reset_clients()
    insert(db, "salesinvoices", *[sales(f"S{n}", subtotal=f"{n}0.00") for n in range(1, 7)])
    batches = []

    def tamper(batch):  # between two batches, someone deletes an entry of the first one
        batches.append(batch)
        if len(batches) == 2:
            db.ledger_entries.delete_one({"source.id": "S1"})

    after_each_batch(monkeypatch, tamper)
    heard: list[tuple[str, dict]] = []

    def listener(event: str, payload: dict) -> None:
        heard.append((event, payload))

    progress.add_listener(listener)
    try:
        with contextlib.suppress(Exception):  # a failed sync raises in the flow
            sync("v1")
    finally:
        progress.remove_listener(listener)
    run = db.ledger_sync_runs.find_one({"vendorId": "v1"})
    assert run["state"] == "failed"
    assert "accounts_receivable" in run["error"] and "10.00" in run["error"], run["error"]
    failures = [payload for event, payload in heard if event == progress.FAILED]
    assert failures and "accounts_receivable" in failures[0]["error"]


def _sync_tampered_after_two_batches(db, sync, monkeypatch, tamper) -> dict:
    """Sync four sales invoices two at a time, `tamper()` run once the second batch is written; the run record."""
    from flows.database import reset_clients

    monkeypatch.setenv("LEDGER_BATCH_SIZE", "2")
    reset_clients()
    insert(db, "salesinvoices", *[sales(f"S{n}", subtotal=f"{n}0.00") for n in range(1, 5)])
    batches = []

    def after(batch):
        batches.append(batch)
        if len(batches) == 2:
            tamper()

    after_each_batch(monkeypatch, after)
    with contextlib.suppress(Exception):  # a failed sync raises in the flow
        sync("v1")
    return db.ledger_sync_runs.find_one({"vendorId": "v1"})


def test_an_entry_added_behind_the_syncs_back_with_its_id_fails_it_naming_the_amount(db, sync, monkeypatch):
    """Outside the chain, so only reading what carries the sync's id can see it."""
    def forge():
        forged = db.ledger_entries.find_one({"source.id": "S1"}, {"seq": 0, "hash": 0})
        db.ledger_entries.insert_one({**forged, "_id": "forged"})

    run = _sync_tampered_after_two_batches(db, sync, monkeypatch, forge)
    assert run["state"] == "failed"
    assert "carrying this sync's id" in run["error"] and "accounts_receivable" in run["error"], run["error"]
    assert "10.00" in run["error"], run["error"]


def test_an_entry_taken_out_of_the_chain_behind_the_syncs_back_fails_it(db, sync, monkeypatch):
    """Its id, its amounts and the count are as written: only the places in the chain show it."""
    run = _sync_tampered_after_two_batches(db, sync, monkeypatch, lambda: db.ledger_entries.update_one(
        {"source.id": "S1"}, {"$unset": {"seq": "", "hash": ""}}))
    assert run["state"] == "failed"
    assert "hold places 2 to 4 of the chain (1 of them none)" in run["error"], run["error"]
    assert "moved the chain from place 0 to 4" in run["error"], run["error"]


def test_the_cli_exits_1_when_verification_fails(db, prefect_server, monkeypatch, capsys):
    from prefect.settings import PREFECT_API_URL

    from cli.main import main

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())  # the session's Prefect server
    insert(db, "salesinvoices", sales("S1", subtotal="100.00"), sales("S2", subtotal="30.00"))
    after_each_batch(monkeypatch, lambda batch: db.ledger_entries.update_one(
        {"source.id": "S2"}, {"$set": {"syncId": "someone-else"}}))
    assert main(["sync", "--vendor", "v1", "--json"]) == 1
    out = capsys.readouterr().out
    assert '"state": "failed"' in out and "accounts_receivable" in out


# ---- the encoding itself -------------------------------------------------------------

bson_ids = st.recursive(
    st.one_of(
        st.text(max_size=12), st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1).map(Int64),
        st.floats(allow_nan=False), st.booleans(), st.none(),
        st.binary(min_size=12, max_size=12).map(ObjectId),
        st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-10**6, max_value=10**6)
        .map(lambda d: Decimal128(str(d))),
        st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1))
        .map(lambda m: m.replace(microsecond=m.microsecond // 1000 * 1000, tzinfo=UTC)),
        st.binary(max_size=8).map(lambda b: Binary(b, 0) if b else Binary(b"", 5)),
        st.sampled_from(["|", "/", "#", "%", "|-", "-", "a|b", "x/reversal", "int:7", "s~", "~", "%7C"]),
    ),
    lambda children: st.dictionaries(st.text("abc", min_size=1, max_size=3), children, max_size=3),
    max_leaves=5,
)


def _same_bson(a, b) -> bool:
    """Equal as BSON values of the same type (what makes two `_id`s one document)."""
    import bson

    return bson.encode({"": a}) == bson.encode({"": b})


@given(st.lists(st.tuples(bson_ids, st.one_of(st.none(), bson_ids)), min_size=2, max_size=6))
def test_entry_ids_are_injective_over_ids_and_payment_ids_of_any_type(units):
    ids = {}
    for source_id, payment_id in units:
        unit = unit_key("v|1", "sales_invoice", source_id, payment_id)
        for entry_id in (posting_id(unit, 1), posting_id(unit, 2), reversal_id(posting_id(unit, 1))):
            if entry_id in ids:
                other = ids[entry_id]
                assert _same_bson(other[0], source_id) and _same_bson(other[1], payment_id), (entry_id, other)
            ids[entry_id] = (source_id, payment_id)


@given(bson_ids)
def test_a_key_reads_back_as_the_same_value(value):
    assert _same_bson(value_of_key(id_key(value)), value)


def test_keys_of_colliding_pairs_differ_and_old_style_ids_never_meet_new_ones():
    assert id_key(OID) != id_key(str(OID))
    assert id_key(7) != id_key("int:7") != id_key("7")
    assert posting_id(unit_key("v", "sales_invoice", "X1", "Y|-"), 1) != posting_id(unit_key("v", "sales_invoice",
                                                                                             "X1|Y"), 1)
    assert "|sales_invoice:" in unit_key("v", "sales_invoice", "X1")  # the old form read "v|sales_invoice|X1|-"
    assert rejection_id("sync_v_1", "expense", 7) != rejection_id("sync_v_1", "expense", "int:7")


def test_a_resumed_read_continues_after_its_checkpoint_whatever_the_id_types(db):
    """A range on `_id` only matches its own BSON type bracket: resuming after a string id must still
    read the ObjectIds, dates and booleans that sort after every string."""
    from ledger.store.sources import ids_after

    for doc_id in [*EVERY_KIND_OF_ID, None]:
        db.salesinvoices.insert_one({"_id": doc_id, "vendorId": "v1"})
    order = [doc["_id"] for doc in db.salesinvoices.find({}, sort=[("_id", 1)])]
    for position, checkpoint in enumerate(order):
        rest = [doc["_id"] for part in ids_after(checkpoint) for doc in db.salesinvoices.find(part, sort=[("_id", 1)])]
        assert rest == order[position + 1:], checkpoint
