"""Long-polling clients, sync-status polling alone, and two API processes sharing rooms through Redis."""

from __future__ import annotations

import asyncio
import socket
import sys
import time

import httpx
import pytest

from cli.stack import spawn, wait_http
from tests.api.conftest import api_settings, bearer, free_port, load_demo, start_api_in_process

REDIS = ("127.0.0.1", 6379)


def redis_available() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=0.5):
            return True
    except OSError:
        return False


async def test_long_polling_client_gets_the_same_events(api, http, mongo, listeners, new_vendor):
    vendor = new_vendor("poll")
    load_demo(mongo, vendor, 200)
    websocket = await listeners(api.url, vendor)
    polling = await listeners(api.url, vendor, transports=["polling"])
    assert polling.client.transport() == "polling"
    sync_id = (await http.post("/api/ledger/sync-data", headers=bearer(vendor))).json()["syncId"]
    await asyncio.gather(websocket.wait_end(sync_id), polling.wait_end(sync_id))
    await asyncio.sleep(0.3)
    strip = lambda events: [(name, {k: v for k, v in data.items()}) for name, data, _ in events]  # noqa: E731
    assert strip(polling.of(sync_id)) == strip(websocket.of(sync_id))


async def test_sync_status_alone_follows_a_sync_to_its_end(api, http, mongo, new_vendor):
    vendor = new_vendor("status")
    load_demo(mongo, vendor, 200)
    sync_id = (await http.post("/api/ledger/sync-data", headers=bearer(vendor))).json()["syncId"]
    seen_states, percents = [], []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        status = (await http.get(f"/api/ledger/sync-status/{sync_id}", headers=bearer(vendor))).json()
        if not seen_states or seen_states[-1] != status["state"]:
            seen_states.append(status["state"])
        percents.append(status["progress"]["percent"])
        if status["state"] not in ("queued", "running", "cancelling"):
            break
        await asyncio.sleep(0.25)
    assert seen_states[0] == "queued" and seen_states[-1] == "completed", seen_states
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert status["stats"]["total"]["scanned"] > 0 and all(s["state"] == "completed" for s in status["steps"])


@pytest.mark.skipif(not redis_available(), reason="needs Redis on 127.0.0.1:6379")
async def test_two_api_processes_share_rooms_through_redis(stack_env, deployment_server, mongo, listeners,
                                                           new_vendor, tmp_path):
    """A client on process B hears a sync triggered on process A (the queued event only exists on A)."""
    redis_url = f"redis://{REDIS[0]}:{REDIS[1]}/0"
    first = await start_api_in_process(api_settings(stack_env, redis_url=redis_url))
    port = free_port()
    env = {**stack_env, "REDIS_URL": redis_url, "LEDGER_ENV": "development"}
    second = spawn("api-b", [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--host", "127.0.0.1",
                             "--port", str(port), "--ws", "websockets-sansio", "--timeout-graceful-shutdown", "2",
                             "--log-level", "warning"], env, tmp_path)
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/api/health", 60, second)
        vendor = new_vendor("redis")
        load_demo(mongo, vendor, 100)
        on_b = await listeners(f"http://127.0.0.1:{port}", vendor)
        on_b_polling = await listeners(f"http://127.0.0.1:{port}", vendor, transports=["polling"])
        on_a = await listeners(first.url, vendor)
        async with httpx.AsyncClient(base_url=first.url) as client:
            started = time.time()
            sync_id = (await client.post("/api/ledger/sync-data", headers=bearer(vendor))).json()["syncId"]
        queued = await on_b.wait_for(lambda e: e[1].get("syncId") == sync_id and e[1].get("state") == "queued", 10)
        print(f"\nMEASURE redis fan-out: POST on A → queued on B {1000 * (queued[2] - started):.1f} ms")
        await asyncio.gather(on_a.wait_end(sync_id), on_b.wait_end(sync_id), on_b_polling.wait_end(sync_id))
        await asyncio.sleep(0.3)
        names = lambda listener: [(n, d.get("step"), d.get("percent")) for n, d, _ in listener.of(sync_id)]  # noqa
        assert names(on_b) == names(on_a) == names(on_b_polling)  # each event exactly once, on both processes
    finally:
        second.stop()
        await first.stop()
