"""Socket.IO delivery during a real sync: the whole stack (Prefect server, served
deployment, API) started as `ledger-sync up` does, one client in the vendor's room."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import urllib.request
from pathlib import Path

import socketio
from pymongo import MongoClient

from cli.embedded_db import free_port


async def _follow_one_sync(app_url: str, token: str) -> dict:
    client = socketio.AsyncClient()
    latencies: list[float] = []
    finished = asyncio.Event()
    first_at: list[float] = []

    @client.on("sync_progress")
    async def on_progress(payload):
        now = time.time()
        first_at.append(now)
        if "emittedAt" in payload:
            latencies.append((now - payload["emittedAt"]) * 1000)

    @client.on("sync_complete")
    async def on_complete(payload):
        finished.set()

    @client.on("sync_error")
    async def on_error(payload):
        finished.set()

    await client.connect(app_url, socketio_path="/socket.io", auth={"token": token}, transports=["websocket"])
    await client.call("join_vendor_room", {})
    request = urllib.request.Request(f"{app_url}/api/ledger/sync-data", data=b"{}", method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    await asyncio.to_thread(urllib.request.urlopen, request, timeout=30)
    await asyncio.wait_for(finished.wait(), timeout=600)
    await client.disconnect()
    span = (first_at[-1] - first_at[0]) if len(first_at) > 1 else 0
    ordered = sorted(latencies)
    return {
        "events": len(first_at),
        "eventsPerSecond": round(len(first_at) / span, 2) if span else None,
        "emitToClientP50Ms": round(statistics.median(ordered), 1) if ordered else None,
        "emitToClientP95Ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1) if ordered else None,
    }


def measure(mongodb_uri: str, database: str, home: Path, documents: int, load) -> dict:
    """Start the stack against the benchmark's database, sync `documents` demo documents, stop it."""
    from cli.stack import start_stack

    vendor = "bench-socket"
    with MongoClient(mongodb_uri) as client:
        load(client[database], vendor, documents)
    os.environ.update(MONGODB_URI=mongodb_uri, MONGODB_DB=database, LEDGER_HOME=str(home),
                      LEDGER_SCHEDULES_ACTIVE="false")
    os.environ.pop("PREFECT_API_URL", None)
    stack = start_stack(port=free_port(), prefect_port=free_port(), echo=lambda _message: None, token_vendor=vendor)
    try:
        return asyncio.run(_follow_one_sync(stack.app_url, stack.token))
    finally:
        stack.stop()
