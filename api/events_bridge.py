"""Prefect's event stream → Socket.IO rooms (and the run record, when a flow run dies).

The flow publishes `ledger.sync.progress|completed|failed` events (resource
`ledger.vendor.<id>`, payload in the SPEC's shapes). Every API process runs one
bridge, subscribed to the Prefect server's event stream, and forwards them to
its own clients in room `vendor:<id>` as `sync_progress`, `sync_complete`,
`sync_error`. (Each process sees the whole stream, so nothing here depends on
Redis and nothing is delivered twice.)

Flow-run state events (`prefect.flow-run.Crashed|Cancelled|Failed|Completed`)
of our deployment's runs are found by their tags (`ledger-sync:<syncId>`).
When the flow could not settle its run record itself (the process was killed,
crashed, or was cancelled before it started), the bridge finishes the record
(only if it is still active and still belongs to that flow run) and the room
still hears the end: `sync_complete` (completed/cancelled) or `sync_error`.

On (re)connect the stream replays about a minute: events older than the
bridge's start are skipped and every event is handled once (by id); at most one
terminal event is sent per run attempt (sync id + flow run id), and progress
never goes backwards within an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from api.sockets import SYNC_COMPLETE, SYNC_ERROR, SYNC_PROGRESS
from flows.deployments import SYNC_TAG as RUN_SYNC_TAG
from flows.progress import COMPLETED, EVENT_PREFIX, FAILED, PROGRESS, VENDOR_RESOURCE
from flows.runs import summary_view
from ledger.clock import utc_now
from ledger.store import Store
from ledger.sync_run import RunState, SyncRun

log = logging.getLogger("ledger_sync.api.events")

FLOW_RUN_PREFIX = "prefect.flow-run."
SYNC_TAG = "prefect.tag." + RUN_SYNC_TAG  # prefect.tag.ledger-sync:<syncId>
TERMINAL_FLOW_STATES = {"Completed": RunState.COMPLETED, "Failed": RunState.FAILED, "Crashed": RunState.CRASHED,
                        "Cancelled": RunState.CANCELLED, "TimedOut": RunState.FAILED}

Emit = Callable[[str, dict, str], Awaitable[None]]  # (event, payload, vendor id)


class _Bounded(OrderedDict):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def remember(self, key, value=True) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class EventsBridge:
    def __init__(self, api_url: str, store_factory: Callable[[], Store], emit: Emit,
                 skew_seconds: float = 2.0):
        self.api_url = api_url
        self.store_factory = store_factory
        self.emit = emit
        self.started_at = datetime.now(UTC) - timedelta(seconds=skew_seconds)
        self.connected = False
        self.received = 0
        self.forwarded = 0
        self.reconnects = 0
        self.last_event_at: float | None = None
        self.lag_seconds: float | None = None  # of the last event forwarded: when it happened → now
        self._seen = _Bounded(20000)
        self._terminal_sent = _Bounded(5000)  # (syncId, flowRunId) that got their final event
        self._percent = _Bounded(5000)  # (syncId, flowRunId) -> last percent forwarded
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.ready = asyncio.Event()

    # ---- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ledger-events-bridge")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, timeout=5)

    async def _run(self) -> None:
        from prefect.events.clients import PrefectEventSubscriber
        from prefect.events.filters import EventFilter, EventNameFilter

        delay = 0.5
        while not self._stopping:
            try:
                event_filter = EventFilter(event=EventNameFilter(prefix=[EVENT_PREFIX, FLOW_RUN_PREFIX]))
                async with PrefectEventSubscriber(api_url=self.api_url, filter=event_filter,
                                                  reconnection_attempts=3) as subscriber:
                    self.connected = True
                    self.ready.set()
                    delay = 0.5
                    async for event in subscriber:
                        await self.handle(event)
                # the stream ended cleanly (server shut down): connect again
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the bridge must outlive a Prefect restart
                log.warning("Prefect event stream lost (%s); reconnecting in %.1fs", error, delay)
            self.connected = False
            if self._stopping:
                break
            self.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    # ---- one event -------------------------------------------------------------

    async def handle(self, event: Any) -> None:
        """Forward one Prefect event (public so tests can drive it directly)."""
        event_id = str(event.id)
        if event_id in self._seen:
            return
        self._seen.remember(event_id)
        if event.occurred < self.started_at:
            return
        self.received += 1
        self.last_event_at = time.monotonic()
        try:
            if event.event.startswith(EVENT_PREFIX):
                await self._ledger_event(event)
            elif event.event.startswith(FLOW_RUN_PREFIX):
                await self._flow_run_event(event)
        except Exception:
            log.exception("could not forward event %s (%s)", event_id, event.event)

    async def _ledger_event(self, event: Any) -> None:
        resource_id = event.resource.id
        if not resource_id.startswith(VENDOR_RESOURCE):
            return
        vendor_id = resource_id[len(VENDOR_RESOURCE):]
        payload = dict(event.payload or {})
        if payload.get("vendorId") != vendor_id or not payload.get("syncId"):
            log.warning("dropping %s: payload does not match its resource %s", event.event, resource_id)
            return
        attempt = (payload["syncId"], _flow_run_id(event))
        if attempt in self._terminal_sent:
            return  # a late heartbeat after the end
        if event.event == PROGRESS:
            last = self._percent.get(attempt)
            percent = payload.get("percent") or 0
            if last is not None and percent < last:
                return
            self._percent.remember(attempt, percent)
            await self._send(SYNC_PROGRESS, payload, vendor_id, event.occurred)
        elif event.event == COMPLETED:
            self._terminal_sent.remember(attempt)
            await self._send(SYNC_COMPLETE, payload, vendor_id, event.occurred)
        elif event.event == FAILED:
            self._terminal_sent.remember(attempt)
            await self._send(SYNC_ERROR, {"syncId": payload["syncId"], "vendorId": vendor_id,
                                          "error": payload.get("error") or "The sync failed.",
                                          "state": payload.get("state", "failed")}, vendor_id, event.occurred)

    async def _flow_run_event(self, event: Any) -> None:
        state_name = event.event[len(FLOW_RUN_PREFIX):]
        if state_name not in TERMINAL_FLOW_STATES:
            return
        sync_id = next((r.id[len(SYNC_TAG):] for r in event.related if r.id.startswith(SYNC_TAG)), None)
        if sync_id is None:
            return  # not one of ours
        flow_run_id = event.resource.id[len(FLOW_RUN_PREFIX):]
        attempt = (sync_id, flow_run_id)
        message = (event.payload or {}).get("validated_state", {}).get("message") if event.payload else None
        # Settle the record even when the flow's own final event was forwarded already: a flow that
        # failed because the database went away tells the room first and may not have written it.
        run = await anyio.to_thread.run_sync(self._settle, sync_id, flow_run_id, state_name, message)
        if run is None or run.flow_run_id != flow_run_id or run.active:
            return  # the record moved on (resumed by another flow run) or is still running
        if attempt in self._terminal_sent:
            return
        self._terminal_sent.remember(attempt)
        if run.state in (RunState.COMPLETED, RunState.CANCELLED):
            await self._send(SYNC_COMPLETE, summary_view(run), run.vendor_id, event.occurred)
        else:
            await self._send(SYNC_ERROR, {"syncId": sync_id, "vendorId": run.vendor_id, "state": run.state.value,
                                          "error": run.error or f"The sync {run.state.value}."}, run.vendor_id,
                             event.occurred)

    def _settle(self, sync_id: str, flow_run_id: str, state_name: str, message: str | None) -> SyncRun | None:
        """Close the record if the flow could not (still active, same flow run); return it as it now is."""
        store = self.store_factory()
        run = store.runs.get(sync_id)
        if run is None or not run.active or run.flow_run_id != flow_run_id:
            return run
        state = TERMINAL_FLOW_STATES[state_name]
        if state is RunState.COMPLETED:  # the flow ended without settling its record: should not happen
            state = RunState.FAILED
        reason = {
            RunState.CRASHED: "The sync process crashed ({}). Resume it to continue from its last checkpoint.",
            RunState.FAILED: "The sync failed ({}). Resume it to continue from its last checkpoint.",
        }.get(state, "{}").format(message or state_name)
        settled = store.runs.close(run.closed(state, None if state is RunState.CANCELLED else reason, utc_now()),
                                   flow_run_id=flow_run_id)
        if settled is not None:
            log.warning("sync %s: flow run %s ended %s without settling its record; marked %s",
                        sync_id, flow_run_id, state_name, state.value)
            return settled
        return store.runs.get(sync_id)

    async def _send(self, name: str, payload: dict, vendor_id: str, occurred: datetime | None = None) -> None:
        if occurred is not None:  # lets a client measure how late it hears about things
            payload = {**payload, "occurredAt": occurred.isoformat()}
            self.lag_seconds = max(0.0, (datetime.now(UTC) - occurred).total_seconds())
        await self.emit(name, payload, vendor_id)
        self.forwarded += 1


def _flow_run_id(event: Any) -> str | None:
    for resource in event.related:
        if resource.id.startswith(FLOW_RUN_PREFIX):
            return resource.id[len(FLOW_RUN_PREFIX):]
    return None
