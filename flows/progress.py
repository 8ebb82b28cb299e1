"""Progress of a running sync, throttled, fanned out to listeners.

The flow reports every batch; listeners hear at most `max_per_second` updates
(plus every step change), and a heartbeat repeats the latest one when a step
has been quiet for `heartbeat_seconds`, so a watcher is never left in silence.
The standard listener publishes Prefect events (resource `ledger.vendor.<id>`)
that the API forwards to Socket.IO rooms; the CLI adds its progress bar.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ledger.sync_run import PROGRESS_STATS, Progress, RunState, SyncRun, TypeStats, overall_percent, steps

Listener = Callable[[str, dict[str, Any]], None]  # (event name, payload)
log = logging.getLogger("ledger_sync.progress")

_listeners: list[Listener] = []

# The Prefect events a sync emits (resource `ledger.vendor.<id>`); the API's bridge forwards them.
EVENT_PREFIX = "ledger.sync."
PROGRESS = EVENT_PREFIX + "progress"
COMPLETED = EVENT_PREFIX + "completed"
FAILED = EVENT_PREFIX + "failed"
VENDOR_RESOURCE = "ledger.vendor."


def add_listener(listener: Listener) -> None:
    _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def publish(event: str, payload: dict[str, Any]) -> None:
    """Hand an event to every listener; a failing listener never fails the sync.

    `emittedAt` (epoch seconds) lets a watcher measure how late an update reaches it."""
    payload = {**payload, "emittedAt": round(time.time(), 3)}
    for listener in list(_listeners):
        try:
            listener(event, payload)
        except Exception:
            log.warning("progress listener failed for %s", payload.get("syncId"), exc_info=True)


def prefect_event_listener(event: str, payload: dict[str, Any]) -> None:
    from prefect.events import emit_event

    emit_event(event=event, resource={"prefect.resource.id": f"{VENDOR_RESOURCE}{payload['vendorId']}",
                                      "ledger.sync-id": payload["syncId"]}, payload=payload)


def progress_at(step: str, processed: int, total: int, message: str) -> Progress:
    fraction = processed / total if total else (1.0 if step == steps()[-1] else 0.0)
    return Progress(step=step, step_index=steps().index(step), steps_total=len(steps()),
                    percent=overall_percent(step, fraction), processed=processed, total=total, message=message)


def progress_event(sync_id: str, vendor_id: str, state: RunState | str, progress: Progress,
                   stats: TypeStats) -> dict[str, Any]:
    """The `sync_progress` payload (SPEC §6)."""
    counts = stats.model_dump()
    return {"syncId": sync_id, "vendorId": vendor_id, "state": str(state), **progress.model_dump(by_alias=True),
            "stats": {name: counts[name] for name in PROGRESS_STATS}}


def run_progress_event(run: SyncRun) -> dict[str, Any]:
    """Where a run stands, from its record (the first event a room hears of a queued run)."""
    return progress_event(run.sync_id, run.vendor_id, run.state, run.progress, run.sync_stats.total)


class ProgressReporter:
    def __init__(self, sync_id: str, vendor_id: str, max_per_second: float = 4.0, heartbeat_seconds: float = 2.0):
        self.sync_id = sync_id
        self.vendor_id = vendor_id
        self.min_interval = 1.0 / max_per_second
        self.heartbeat_seconds = heartbeat_seconds
        self._last_sent = 0.0
        self._last_step: str | None = None
        self._latest: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def event(self, progress: Progress, stats: TypeStats) -> dict[str, Any]:
        return progress_event(self.sync_id, self.vendor_id, RunState.RUNNING, progress, stats)

    def update(self, snapshot: dict[str, Any], force: bool = False) -> None:
        with self._lock:
            if self._latest is not None and snapshot["percent"] < self._latest["percent"]:
                snapshot = {**snapshot, "percent": self._latest["percent"]}  # watchers never see progress go back
            self._latest = snapshot
            now = time.monotonic()
            due = force or snapshot["step"] != self._last_step or now - self._last_sent >= self.min_interval
            if not due:
                return
            self._last_sent = now
            self._last_step = snapshot["step"]
        publish(PROGRESS, snapshot)

    def __enter__(self) -> ProgressReporter:
        self._thread = threading.Thread(target=self._beat, name=f"progress-{self.sync_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)

    def _beat(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                quiet = time.monotonic() - self._last_sent >= self.heartbeat_seconds
                latest = self._latest
                if quiet and latest is not None:
                    self._last_sent = time.monotonic()
            if quiet and latest is not None:
                publish(PROGRESS, latest)
