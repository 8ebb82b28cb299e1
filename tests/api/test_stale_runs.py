"""The API's periodic stale-run detector: a sync whose process died is reported crashed (and is
resumable) even when nobody triggers that vendor again."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import timedelta

import httpx

from ledger.clock import utc_now
from tests.api.conftest import api_settings, bearer, load_demo, start_api_in_process

# Seconds without a heartbeat (the flow beats every STALE_AFTER / 4) and between checks. Small here;
# LEDGER_TEST_STALE="60,15" measures the production defaults (about a minute more).
STALE_AFTER, CHECK_EVERY = (int(v) for v in os.environ.get("LEDGER_TEST_STALE", "4,1").split(","))


async def _wait_state(client: httpx.AsyncClient, vendor: str, sync_id: str, states: set[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = (await client.get(f"/api/ledger/sync-status/{sync_id}", headers=bearer(vendor))).json()
        if status["state"] in states:
            return status
        assert time.monotonic() < deadline, f"still {status['state']}"
        await asyncio.sleep(0.1)


async def test_a_killed_sync_is_marked_crashed_without_a_new_trigger(stack_env, deployment_server, mongo, listeners,
                                                                     new_vendor):
    vendor = new_vendor("stale")
    load_demo(mongo, vendor, 600)
    detecting = await start_api_in_process(api_settings(stack_env, ledger_stale_after_seconds=STALE_AFTER,
                                                        ledger_stale_check_seconds=CHECK_EVERY))
    try:
        room = await listeners(detecting.url, vendor)
        # The flow in a process of its own that dies with SIGKILL mid-sync: nothing tells Prefect,
        # so the flow run stays "Running" there and only the missing heartbeat gives it away.
        env = {**stack_env, "LEDGER_BATCH_SIZE": "50", "LEDGER_CRASH_AFTER_DOCUMENTS": "120",
               "LEDGER_STALE_AFTER_SECONDS": str(STALE_AFTER)}
        script = f"from flows.sync_vendor import sync_vendor_ledger; sync_vendor_ledger({vendor!r})"
        killed = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script], env=env,
                                         capture_output=True, timeout=180)
        killed_at = time.monotonic()
        assert killed.returncode == -9, killed.stderr.decode()[-2000:]
        run = mongo.ledger_sync_runs.find_one({"vendorId": vendor, "active": True})
        assert run is not None and run["state"] == "running"
        sync_id = run["syncId"]

        async with httpx.AsyncClient(base_url=detecting.url, timeout=20) as client:
            status = await _wait_state(client, vendor, sync_id, {"crashed"}, timeout=STALE_AFTER + CHECK_EVERY + 20)
            detected_after = time.monotonic() - killed_at
            end = await room.wait_end(sync_id, timeout=10)
            print(f"\nMEASURE kill -9 → sync-status 'crashed' by the periodic detector: {detected_after:.1f} s "
                  f"(LEDGER_STALE_AFTER_SECONDS={STALE_AFTER}, check every {CHECK_EVERY} s)")
            assert end[0] == "sync_error" and end[1]["state"] == "crashed" and "Resume" in end[1]["error"]
            assert status["resumable"] and status["endedAt"]
            assert "running" not in {step["state"] for step in status["steps"]}
            assert mongo.ledger_sync_runs.count_documents({"vendorId": vendor}) == 1  # no new sync was opened

            resumed = await client.post(f"/api/ledger/sync-runs/{sync_id}/resume", headers=bearer(vendor))
            assert resumed.status_code == 202, resumed.text
            final = await _wait_state(client, vendor, sync_id, {"completed", "failed", "crashed"}, timeout=120)
            assert final["state"] == "completed" and final["attempts"] == 2 and final["verification"]["ok"]
    finally:
        await detecting.stop()


async def test_only_runs_without_a_heartbeat_are_crashed(stack_env, mongo, new_vendor):
    """A run queued for a flow run that exists waits for a worker, however long; a queued run that
    never got a flow run (the trigger died) and a running one without heartbeat are crashed."""
    old = utc_now() - timedelta(seconds=STALE_AFTER * 10)
    waiting, orphan, dead, alive = (new_vendor(prefix) for prefix in ("waiting", "orphan", "dead", "alive"))
    base = {"parameters": {}, "steps": {}, "stats": {}, "startedAt": old, "active": True}
    mongo.ledger_sync_runs.insert_many([
        {**base, "_id": f"sync_{waiting}", "syncId": f"sync_{waiting}", "vendorId": waiting, "state": "queued",
         "heartbeatAt": old, "flowRunId": "00000000-0000-0000-0000-000000000001"},
        {**base, "_id": f"sync_{orphan}", "syncId": f"sync_{orphan}", "vendorId": orphan, "state": "queued",
         "heartbeatAt": old, "flowRunId": None},
        {**base, "_id": f"sync_{dead}", "syncId": f"sync_{dead}", "vendorId": dead, "state": "running",
         "heartbeatAt": old, "flowRunId": "00000000-0000-0000-0000-000000000002",
         "steps": {"sales_invoices": {"state": "running"}}},
        {**base, "_id": f"sync_{alive}", "syncId": f"sync_{alive}", "vendorId": alive, "state": "running",
         "heartbeatAt": utc_now() + timedelta(hours=1), "flowRunId": "00000000-0000-0000-0000-000000000003"},
    ])
    detecting = await start_api_in_process(api_settings(stack_env, ledger_stale_after_seconds=STALE_AFTER,
                                                        ledger_stale_check_seconds=CHECK_EVERY))
    try:
        deadline = time.monotonic() + 10
        while mongo.ledger_sync_runs.count_documents({"_id": {"$in": [f"sync_{orphan}", f"sync_{dead}"]},
                                                      "state": "crashed"}) < 2:
            assert time.monotonic() < deadline, "the detector did not run"
            await asyncio.sleep(0.1)
        await asyncio.sleep(CHECK_EVERY * 1.5)
        states = {run["vendorId"]: (run["state"], run.get("active"))
                  for run in mongo.ledger_sync_runs.find({"vendorId": {"$in": [waiting, orphan, dead, alive]}})}
        assert states == {waiting: ("queued", True), orphan: ("crashed", None), dead: ("crashed", None),
                          alive: ("running", True)}
        assert mongo.ledger_sync_runs.find_one({"_id": f"sync_{dead}"})["steps"]["sales_invoices"]["state"] == "failed"
    finally:
        await detecting.stop()
        mongo.ledger_sync_runs.delete_many({"vendorId": {"$in": [waiting, orphan, dead, alive]}})
