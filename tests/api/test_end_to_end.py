"""POST sync-data → the served deployment on a real Prefect server → live events in the vendor's room."""

from __future__ import annotations

import statistics
import time
from datetime import datetime

from ledger.sync_run import steps
from tests.api.conftest import bearer, load_demo

STAT_KEYS = ("synced", "skipped", "reversed", "errors")


async def test_sync_end_to_end(api, http, mongo, new_vendor, listeners):
    vendor = new_vendor("e2e")
    load_demo(mongo, vendor, 600)
    room = await listeners(api.url, vendor)

    started, wall = time.perf_counter(), time.time()
    response = await http.post("/api/ledger/sync-data", headers=bearer(vendor), json={})
    post_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["success"] is True and body["message"] == "Data sync started. You will receive real-time updates."
    sync_id = body["syncId"]
    assert sync_id.startswith(f"sync_{vendor}_")

    # A second trigger while it runs gets the running one's id.
    again = await http.post("/api/ledger/sync-data", headers=bearer(vendor))
    assert again.status_code == 409 and again.json() == {"success": False, "syncId": sync_id,
                                                         "message": again.json()["message"]}

    end = await room.wait_end(sync_id, timeout=120)
    assert end[0] == "sync_complete", end
    events = room.of(sync_id)
    progress = [e for e in events if e[0] == "sync_progress"]
    assert progress[0][1]["state"] == "queued"
    first_step = next(e for e in progress if e[1].get("state") == "running")
    # every step, in order, percent never backwards
    indexes = [e[1]["stepIndex"] for e in progress if e[1].get("state") == "running"]
    assert indexes == sorted(indexes)
    assert [s for s in steps() if steps().index(s) in set(indexes)] == list(steps())
    percents = [e[1]["percent"] for e in progress]
    assert percents == sorted(percents), percents
    for _, payload, _ in progress:
        assert set(payload) >= {"syncId", "vendorId", "step", "stepIndex", "stepsTotal", "percent", "processed",
                                "total", "stats", "message"}
        assert set(payload["stats"]) == set(STAT_KEYS)
    assert [e for e in events if e[0] != "sync_progress"] == [end]  # exactly one terminal event

    status = (await http.get(f"/api/ledger/sync-status/{sync_id}", headers=bearer(vendor))).json()
    assert status["state"] == "completed"
    assert end[1]["stats"] == status["stats"] and end[1]["state"] == "completed"
    assert set(end[1]) >= {"syncId", "vendorId", "stats", "durationMs"}
    posted = mongo.ledger_entries.count_documents({"vendorId": vendor, "syncId": sync_id})
    assert status["stats"]["total"]["synced"] + status["stats"]["total"]["reversed"] == posted > 0
    assert status["stats"]["total"]["errors"] == 4  # the demo set's broken documents
    assert status["flowRunId"]
    errors = (await http.get(f"/api/ledger/sync-runs/{sync_id}/errors", headers=bearer(vendor))).json()["errors"]
    assert len(errors) == 4 and all(e["reason"] and e["sourceId"] for e in errors)
    tb = (await http.get("/api/ledger/trial-balance", headers=bearer(vendor))).json()
    assert tb["totalDebit"] == tb["totalCredit"] and tb["vendorId"] == vendor
    assert all(isinstance(v, str) for v in tb["balances"].values()) and set(tb["accounts"]) == set(tb["balances"])
    runs = (await http.get("/api/ledger/sync-runs?limit=5", headers=bearer(vendor))).json()["runs"]
    assert runs[0]["syncId"] == sync_id

    # the per-vendor Prefect concurrency limit exists (limit 1) and was released
    limit = await api.app.fastapi_app.state.orchestrator.client.read_global_concurrency_limit_by_name(
        f"ledger-vendor-{vendor}")
    assert limit.limit == 1 and limit.active_slots == 0

    lags = [received - datetime.fromisoformat(p["occurredAt"]).timestamp() for _, p, received in events
            if "occurredAt" in p]
    lags.sort()
    report = {
        "post_ms": round(post_ms, 1),
        "post_to_queued_ms": round((progress[0][2] - wall) * 1000, 1),
        "post_to_first_step_s": round(first_step[2] - wall, 2),
        "events": len(events),
        "emit_to_client_p50_ms": round(statistics.median(lags) * 1000, 1),
        "emit_to_client_p95_ms": round(lags[int(len(lags) * 0.95) - 1] * 1000, 1),
        "duration_ms": status["durationMs"],
    }
    print("\nMEASURE", report)
