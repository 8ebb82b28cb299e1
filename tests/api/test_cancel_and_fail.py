"""Cancel reaches a cancelled state the room hears about; a failing flow ends with sync_error; resume works."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bson.decimal128 import Decimal128

from tests.api.conftest import bearer, load_demo


async def test_cancel_a_running_sync(api, http, mongo, listeners, new_vendor, deployment_server):
    vendor = new_vendor("cancel")
    load_demo(mongo, vendor, 2000)
    logged_before = len(deployment_server.log_path.read_text())
    room = await listeners(api.url, vendor)
    sync_id = (await http.post("/api/ledger/sync-data", headers=bearer(vendor))).json()["syncId"]
    await room.wait_for(lambda e: e[1].get("syncId") == sync_id and e[1].get("step") == "sales_invoices"
                        and e[1].get("state") == "running", timeout=60)
    response = await http.post(f"/api/ledger/sync-runs/{sync_id}/cancel", headers=bearer(vendor))
    assert response.status_code == 202, response.text
    assert response.json()["state"] in ("cancelling", "cancelled")
    end = await room.wait_end(sync_id, timeout=60)
    assert end[0] == "sync_complete" and end[1]["state"] == "cancelled", end
    status = (await http.get(f"/api/ledger/sync-status/{sync_id}", headers=bearer(vendor))).json()
    assert status["state"] == "cancelled" and status["resumable"] is True
    assert len([e for e in room.of(sync_id) if e[0] != "sync_progress"]) == 1
    # the operator's Prefect UI says Cancelled too: the flow stopped by itself, no task "Crash detected!"
    flow_run = await _settled_flow_run(api, mongo.ledger_sync_runs.find_one({"_id": sync_id})["flowRunId"])
    assert flow_run.state.type.value == "CANCELLED", flow_run.state
    logged = deployment_server.log_path.read_text()[logged_before:]
    assert "Crash detected!" not in logged and "Crashed(" not in logged, logged[-3000:]
    # each step's summary is logged at INFO, though the stack keeps Prefect's own logging to warnings
    assert re.search(rf"\| INFO +\| Task run 'check_existing[^']*' - check_existing vendor={vendor} "
                     rf"sync={sync_id}: .* entries already posted", logged), logged[-3000:]
    # cancelling again is a clear 409
    again = await http.post(f"/api/ledger/sync-runs/{sync_id}/cancel", headers=bearer(vendor))
    assert again.status_code == 409 and again.json()["state"] == "cancelled"

    # resume continues from the checkpoint and completes; nothing posted twice
    resumed = await http.post(f"/api/ledger/sync-runs/{sync_id}/resume", headers=bearer(vendor))
    assert resumed.status_code == 202 and resumed.json()["syncId"] == sync_id
    end = await room.wait_for(lambda e: e[0] == "sync_complete" and e[1].get("syncId") == sync_id
                              and e[1].get("state") == "completed", timeout=120)
    status = (await http.get(f"/api/ledger/sync-status/{sync_id}", headers=bearer(vendor))).json()
    assert status["state"] == "completed" and status["attempts"] == 2 and end[1]["stats"] == status["stats"]
    posted = mongo.ledger_entries.count_documents({"vendorId": vendor})
    assert status["stats"]["total"]["synced"] + status["stats"]["total"]["reversed"] == posted
    tb = (await http.get("/api/ledger/trial-balance", headers=bearer(vendor))).json()
    assert tb["totalDebit"] == tb["totalCredit"]


async def _settled_flow_run(api, flow_run_id: str, timeout: float = 30):
    """The flow run once Prefect has it in a final state."""
    import asyncio

    client = api.app.fastapi_app.state.orchestrator.client
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        flow_run = await client.read_flow_run(flow_run_id)
        if flow_run.state.is_final() or asyncio.get_running_loop().time() > deadline:
            return flow_run
        await asyncio.sleep(0.5)


async def test_cancel_before_the_flow_starts(api, http, mongo, listeners, new_vendor):
    vendor = new_vendor("early")
    load_demo(mongo, vendor, 30)
    room = await listeners(api.url, vendor)
    sync_id = (await http.post("/api/ledger/sync-data", headers=bearer(vendor))).json()["syncId"]
    response = await http.post(f"/api/ledger/sync-runs/{sync_id}/cancel", headers=bearer(vendor))
    assert response.status_code == 202, response.text
    end = await room.wait_end(sync_id, timeout=60)
    assert end[0] == "sync_complete" and end[1]["state"] == "cancelled", end
    status = (await http.get(f"/api/ledger/sync-status/{sync_id}", headers=bearer(vendor))).json()
    assert status["state"] == "cancelled"
    # the vendor is not blocked
    again = await http.post("/api/ledger/sync-data", headers=bearer(vendor))
    assert again.status_code == 202, again.text
    await room.wait_end(again.json()["syncId"], timeout=90)


async def test_a_failing_flow_ends_with_sync_error(api, http, mongo, listeners, new_vendor):
    vendor = new_vendor("broken")
    load_demo(mongo, vendor, 20)
    mongo.ledger_entries.insert_one({
        "_id": f"{vendor}-tampered", "vendorId": vendor, "date": datetime(2026, 1, 5, tzinfo=UTC),
        "source": {"type": "expense", "id": "x"}, "fingerprint": "tampered", "syncId": "manual",
        "lines": [{"account": "cash", "debit": Decimal128("100.00"), "credit": Decimal128("0")}]})
    room = await listeners(api.url, vendor)
    sync_id = (await http.post("/api/ledger/sync-data", headers=bearer(vendor))).json()["syncId"]
    end = await room.wait_end(sync_id, timeout=60)
    assert end[0] == "sync_error", end
    assert "does not balance" in end[1]["error"] and end[1]["vendorId"] == vendor
    status = (await http.get(f"/api/ledger/sync-status/{sync_id}", headers=bearer(vendor))).json()
    assert status["state"] == "failed" and "does not balance" in status["error"]
    steps = {s["name"]: s["state"] for s in status["steps"]}
    assert steps["check_existing"] == "failed" and steps["sales_invoices"] == "pending"
    assert mongo.ledger_entries.count_documents({"vendorId": vendor}) == 1  # nothing written
    assert len([e for e in room.of(sync_id) if e[0] != "sync_progress"]) == 1


async def test_a_crashed_flow_run_is_settled_by_the_bridge(api, http, mongo, listeners, new_vendor):
    """The flow run dies without settling its record: the Prefect state event still ends the run."""
    from prefect.states import Crashed

    vendor = new_vendor("crash")
    load_demo(mongo, vendor, 1500)
    room = await listeners(api.url, vendor)
    sync_id = (await http.post("/api/ledger/sync-data", headers=bearer(vendor))).json()["syncId"]
    await room.wait_for(lambda e: e[1].get("syncId") == sync_id and e[1].get("state") == "running", timeout=60)
    run = mongo.ledger_sync_runs.find_one({"_id": sync_id})
    # what the runner reports when the process dies: force the flow run to Crashed
    await api.app.fastapi_app.state.orchestrator.client.set_flow_run_state(
        run["flowRunId"], Crashed(message="process exited with code -9"), force=True)
    end = await room.wait_end(sync_id, timeout=30)
    assert end[0] == "sync_error" and "crashed" in end[1]["error"], end
    status = (await http.get(f"/api/ledger/sync-status/{sync_id}", headers=bearer(vendor))).json()
    assert status["state"] in ("crashed", "cancelled", "failed") and status["resumable"]


async def test_a_trigger_that_fails_does_not_block_the_vendor(api, stack_env, mongo, listeners, new_vendor):
    """Prefect refuses the run (here: no such deployment): 503, the run is failed, the room is told."""
    import httpx

    from tests.api.conftest import api_settings, start_api_in_process

    vendor = new_vendor("notrigger")
    broken = await start_api_in_process(api_settings(stack_env, prefect_deployment="sync-vendor-ledger/missing"))
    try:
        room = await listeners(broken.url, vendor)
        async with httpx.AsyncClient(base_url=broken.url, timeout=20) as client:
            response = await client.post("/api/ledger/sync-data", headers=bearer(vendor))
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["success"] is False and "could not be started" in body["message"]
        end = await room.wait_end(body["syncId"], timeout=10)
        assert end[0] == "sync_error"
        record = mongo.ledger_sync_runs.find_one({"_id": body["syncId"]})
        assert record["state"] == "failed" and "active" not in record
    finally:
        await room.close()
        await broken.stop()
    async with httpx.AsyncClient(base_url=api.url, timeout=20) as client:  # the vendor can sync again
        assert (await client.post("/api/ledger/sync-data", headers=bearer(vendor))).status_code == 202
