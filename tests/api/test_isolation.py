"""Rooms are per vendor: nobody hears another vendor's sync, and nobody joins another vendor's room."""

from __future__ import annotations

import asyncio

from tests.api.conftest import bearer, load_demo


async def test_join_only_your_own_room(api, listeners, new_vendor):
    a, b = new_vendor("a"), new_vendor("b")
    listener = await listeners(api.url, a, join=False)
    refused = await listener.client.call("join_vendor_room", {"vendorId": b}, timeout=5)
    assert refused["ok"] is False and refused["error"] and "room" not in refused
    refused = await listener.client.call("join_vendor_room", b, timeout=5)
    assert refused["ok"] is False
    joined = await listener.client.call("join_vendor_room", {"vendorId": a}, timeout=5)
    assert joined == {"ok": True, "room": f"vendor:{a}"}


async def test_a_vendor_never_hears_another_vendors_events(api, http, mongo, listeners, new_vendor):
    a, b = new_vendor("a"), new_vendor("b")
    load_demo(mongo, a, 60)
    load_demo(mongo, b, 60)
    room_a = await listeners(api.url, a)
    room_b = await listeners(api.url, b)
    sync_b = (await http.post("/api/ledger/sync-data", headers=bearer(b))).json()["syncId"]
    sync_a = (await http.post("/api/ledger/sync-data", headers=bearer(a))).json()["syncId"]
    await asyncio.gather(room_a.wait_end(sync_a), room_b.wait_end(sync_b))
    assert room_a.events and all(e[1]["vendorId"] == a and e[1]["syncId"] == sync_a for e in room_a.events)
    assert room_b.events and all(e[1]["vendorId"] == b and e[1]["syncId"] == sync_b for e in room_b.events)
