"""Concurrent triggers through the real API: one sync per vendor, whatever arrives at once;
different vendors run side by side and each ends with the right books."""

from __future__ import annotations

import asyncio
import time

import httpx

from ledger.batch import plan_batch
from ledger.clock import utc_now
from ledger.kinds import kinds
from ledger.sync_run import SyncParameters
from ledger.verification import balances_of
from tests.api.conftest import bearer, load_demo


def expected_net_balances(mongo, vendor: str) -> dict[str, str]:
    """A fresh in-memory posting of the vendor's documents, as `/trial-balance` shows it."""
    entries = []
    for kind in kinds():
        documents = list(mongo[kind.collection].find({"vendorId": vendor}))
        entries.extend(plan_batch(kind, documents, [], SyncParameters(), "INR", utc_now()).entries)
    return {account: f"{amount:.2f}" for account, amount in balances_of(entries).net_balances().items()}


async def wait_final(http: httpx.AsyncClient, vendor: str, sync_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = (await http.get(f"/api/ledger/sync-status/{sync_id}", headers=bearer(vendor))).json()
        if status["state"] not in ("queued", "running", "cancelling"):
            return status
        assert time.monotonic() < deadline, f"{sync_id} still {status['state']}"
        await asyncio.sleep(0.25)


async def test_ten_simultaneous_triggers_start_one_sync(api, mongo, new_vendor):
    vendor = new_vendor("burst")
    load_demo(mongo, vendor, 150)
    async with httpx.AsyncClient(base_url=api.url, timeout=30,
                                 limits=httpx.Limits(max_connections=20)) as client:
        responses = await asyncio.gather(*(client.post("/api/ledger/sync-data", headers=bearer(vendor), json={})
                                           for _ in range(10)))
        codes = sorted(response.status_code for response in responses)
        assert codes == [202] + [409] * 9, [(r.status_code, r.text) for r in responses]
        sync_ids = {response.json()["syncId"] for response in responses}
        assert len(sync_ids) == 1, sync_ids
        sync_id = sync_ids.pop()
        for response in responses:
            body = response.json()
            assert body["success"] is (response.status_code == 202) and body["message"]
        assert mongo.ledger_sync_runs.count_documents({"vendorId": vendor}) == 1

        status = await wait_final(client, vendor, sync_id)
        assert status["state"] == "completed" and status["verification"]["ok"], status
        assert mongo.ledger_sync_runs.count_documents({"vendorId": vendor}) == 1
        posted = mongo.ledger_entries.count_documents({"vendorId": vendor})
        assert status["stats"]["total"]["synced"] + status["stats"]["total"]["reversed"] == posted


async def test_two_vendors_sync_in_parallel_with_the_right_books(api, mongo, new_vendor):
    vendors = [new_vendor("pair"), new_vendor("pair")]
    for vendor in vendors:
        load_demo(mongo, vendor, 300)
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        responses = await asyncio.gather(*(client.post("/api/ledger/sync-data", headers=bearer(vendor))
                                           for vendor in vendors))
        assert [r.status_code for r in responses] == [202, 202], [r.text for r in responses]
        sync_ids = [r.json()["syncId"] for r in responses]
        statuses = await asyncio.gather(*(wait_final(client, vendor, sync_id)
                                          for vendor, sync_id in zip(vendors, sync_ids, strict=False)))
        runs = [mongo.ledger_sync_runs.find_one({"_id": sync_id}) for sync_id in sync_ids]
        # they really ran side by side
        assert runs[0]["startedAt"] < runs[1]["endedAt"] and runs[1]["startedAt"] < runs[0]["endedAt"]
        for vendor, status in zip(vendors, statuses, strict=False):
            assert status["state"] == "completed" and status["verification"]["ok"], status
            assert status["stats"]["total"]["errors"] == 4  # the demo set's broken documents
            tb = (await client.get("/api/ledger/trial-balance", headers=bearer(vendor))).json()
            assert tb["balances"] == expected_net_balances(mongo, vendor), vendor
            assert tb["totalDebit"] == tb["totalCredit"]
            assert mongo.ledger_entries.count_documents({"vendorId": vendor, "syncId": status["syncId"]}) > 0
