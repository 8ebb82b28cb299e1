"""The events bridge on its own: replayed, duplicated, late and out-of-order events, dead flow runs, reconnects."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from prefect.events import Event

from api.events_bridge import EventsBridge
from flows.runs import open_run
from ledger.sync_run import SyncParameters
from tests.api.conftest import bearer, load_demo


def ledger_event(name: str, vendor: str, payload: dict, flow_run: str = "fr-1", occurred=None) -> Event:
    return Event(occurred=occurred or datetime.now(UTC), event=name, id=uuid.uuid4(),
                 resource={"prefect.resource.id": f"ledger.vendor.{vendor}", "ledger.sync-id": payload["syncId"]},
                 related=[{"prefect.resource.id": f"prefect.flow-run.{flow_run}", "prefect.resource.role": "flow-run"}],
                 payload=payload)


def flow_run_event(state: str, flow_run: str, sync_id: str, vendor: str) -> Event:
    return Event(occurred=datetime.now(UTC), event=f"prefect.flow-run.{state}", id=uuid.uuid4(),
                 resource={"prefect.resource.id": f"prefect.flow-run.{flow_run}"},
                 related=[{"prefect.resource.id": f"prefect.tag.ledger-sync:{sync_id}",
                           "prefect.resource.role": "tag"},
                          {"prefect.resource.id": f"prefect.tag.ledger-vendor:{vendor}",
                           "prefect.resource.role": "tag"}],
                 payload={"validated_state": {"type": state.upper(), "name": state, "message": "process exited -9"}})


def bridge_with(store=None):
    sent = []

    async def emit(name, payload, vendor):
        sent.append((name, payload, vendor))

    return EventsBridge("http://unused/api", lambda: store, emit), sent


def progress(sync_id: str, vendor: str, percent: float) -> dict:
    return {"syncId": sync_id, "vendorId": vendor, "state": "running", "step": "sales_invoices", "stepIndex": 1,
            "stepsTotal": 5, "percent": percent, "processed": 1, "total": 2, "message": "",
            "stats": {"synced": 0, "skipped": 0, "reversed": 0, "errors": 0}}


async def test_duplicates_old_events_backwards_progress_and_late_heartbeats_are_dropped():
    bridge, sent = bridge_with()
    first = ledger_event("ledger.sync.progress", "v1", progress("s1", "v1", 30.0))
    await bridge.handle(first)
    await bridge.handle(first)  # replayed on reconnect
    await bridge.handle(ledger_event("ledger.sync.progress", "v1", progress("s1", "v1", 10.0),
                                     occurred=datetime.now(UTC) - timedelta(minutes=1)))  # before start
    await bridge.handle(ledger_event("ledger.sync.progress", "v1", progress("s1", "v1", 25.0)))  # backwards
    await bridge.handle(ledger_event("ledger.sync.progress", "v1", progress("s1", "v1", 40.0)))
    await bridge.handle(ledger_event("ledger.sync.completed", "v1", {"syncId": "s1", "vendorId": "v1", "stats": {},
                                                                      "state": "completed", "durationMs": 1}))
    await bridge.handle(ledger_event("ledger.sync.progress", "v1", progress("s1", "v1", 40.0)))  # late heartbeat
    # a resumed attempt (another flow run) starts its own progress
    await bridge.handle(ledger_event("ledger.sync.progress", "v1", progress("s1", "v1", 35.0), flow_run="fr-2"))
    assert [(n, p.get("percent")) for n, p, _ in sent] == [("sync_progress", 30.0), ("sync_progress", 40.0),
                                                           ("sync_complete", None), ("sync_progress", 35.0)]
    assert all(v == "v1" and "occurredAt" in p for _, p, v in sent)


async def test_an_event_whose_payload_names_another_vendor_is_dropped():
    bridge, sent = bridge_with()
    await bridge.handle(ledger_event("ledger.sync.progress", "v1", progress("s1", "v2", 10.0)))
    assert sent == []


async def test_a_crashed_flow_run_settles_its_record_once(mongo, new_vendor):
    from ledger.store import Store

    store = Store(mongo)
    store.ensure_indexes()
    vendor = new_vendor("crashy")
    run = open_run(store, vendor, SyncParameters(), 0, 60)
    store.runs.attach_flow_run(run.sync_id, "fr-9")
    bridge, sent = bridge_with(store)
    # a state event of another flow run of the same sync (an older attempt) changes nothing
    await bridge.handle(flow_run_event("Crashed", "fr-old", run.sync_id, vendor))
    assert store.runs.get(run.sync_id).active and sent == []
    await bridge.handle(flow_run_event("Crashed", "fr-9", run.sync_id, vendor))
    await bridge.handle(flow_run_event("Crashed", "fr-9", run.sync_id, vendor))
    settled = mongo.ledger_sync_runs.find_one({"_id": run.sync_id})
    assert settled["state"] == "crashed" and "active" not in settled and "Resume" in settled["error"]
    assert [(n, p["state"]) for n, p, _ in sent] == [("sync_error", "crashed")]
    # the flow's own late event for that attempt is not forwarded again
    await bridge.handle(ledger_event("ledger.sync.failed", vendor, {"syncId": run.sync_id, "vendorId": vendor,
                                                                     "error": "x"}, flow_run="fr-9"))
    assert len(sent) == 1


async def test_the_bridge_reconnects_when_the_stream_drops(api, http, mongo, listeners, new_vendor):
    bridge = api.bridge
    reconnects = bridge.reconnects
    subscriber_socket = None
    # close the live websocket under the subscriber: the stream ends, the bridge connects again
    for task in asyncio.all_tasks():
        if task.get_name() == "ledger-events-bridge":
            frame_locals = task.get_coro().cr_frame.f_locals
            subscriber_socket = frame_locals["subscriber"]._websocket
    assert subscriber_socket is not None
    await subscriber_socket.close()
    for _ in range(100):
        if bridge.reconnects > reconnects and bridge.connected:
            break
        await asyncio.sleep(0.1)
    assert bridge.reconnects > reconnects and bridge.connected
    vendor = new_vendor("reconnect")
    load_demo(mongo, vendor, 20)
    room = await listeners(api.url, vendor)
    sync_id = (await http.post("/api/ledger/sync-data", headers=bearer(vendor))).json()["syncId"]
    end = await room.wait_end(sync_id, timeout=60)
    assert end[0] == "sync_complete"
    ids = [(n, d.get("step"), d.get("percent"), d.get("occurredAt")) for n, d, _ in room.of(sync_id)]
    assert len(ids) == len(set(ids))  # the replay after reconnecting delivered nothing twice
