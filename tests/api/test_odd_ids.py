"""Documents with `_id`s of any BSON type are found again through the API by the key entries show."""

from __future__ import annotations

import uuid

from bson import Decimal128, Int64, ObjectId
from bson.binary import Binary

from ledger.ids import id_key
from tests.api.conftest import bearer
from tests.factories import payment, sales

ODD_IDS = [ObjectId("65f1c2a0b1d2e3f405162739"), "65f1c2a0b1d2e3f405162739", 7, "7", Int64(2**40), 2.5,
           Decimal128("3.25"), Binary(uuid.uuid4().bytes, 4), {"k": 1}, "X1|Y"]


async def _wait_completed(http, vendor, sync_id):
    import asyncio

    for _ in range(300):
        run = (await http.get(f"/api/ledger/sync-status/{sync_id}", headers=bearer(vendor))).json()
        if run["state"] not in ("queued", "running"):
            return run
        await asyncio.sleep(0.2)
    raise AssertionError("the sync did not finish")


async def test_every_odd_id_round_trips_through_the_entries_route(http, mongo, new_vendor):
    vendor = new_vendor("ids")
    documents = [sales(doc_id, vendor=vendor, subtotal=f"{10 + n}.00") for n, doc_id in enumerate(ODD_IDS)]
    documents.append(sales("X1", vendor=vendor, subtotal="50.00", status="partially_paid",
                           payments=[payment("Y|-", "20.00")]))
    mongo.salesinvoices.insert_many(documents)
    started = await http.post("/api/ledger/sync-data", headers=bearer(vendor), json={})
    assert started.status_code == 202, started.text
    run = await _wait_completed(http, vendor, started.json()["syncId"])
    assert run["state"] == "completed", run
    assert run["stats"]["total"]["synced"] == len(ODD_IDS) + 2

    for n, doc_id in enumerate(ODD_IDS):
        key = id_key(doc_id)
        response = await http.get("/api/ledger/entries", params={"sourceId": key, "sourceType": "sales_invoice"},
                                  headers=bearer(vendor))
        assert response.status_code == 200, response.text
        found = response.json()["entries"]
        assert [(e["source"]["key"], e["lines"][0]["debit"]) for e in found] == [(key, f"{10 + n}.00")], doc_id
    # An ObjectId's hex finds the ObjectId; its string twin is found by its key.
    hex_text = "65f1c2a0b1d2e3f405162739"
    plain = (await http.get("/api/ledger/entries", params={"sourceId": hex_text}, headers=bearer(vendor))).json()
    assert [e["source"]["key"] for e in plain["entries"]] == [f"o~{hex_text}"]
    paid = (await http.get("/api/ledger/entries", params={"sourceId": "X1"}, headers=bearer(vendor))).json()
    assert sorted(e["source"]["paymentId"] or "-" for e in paid["entries"]) == ["-", "Y|-"]
