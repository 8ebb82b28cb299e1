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

from ledger.sync_run import STEPS, overall_percent

Listener = Callable[[str, dict], None]  # (event name, payload)
log = logging.getLogger("ledger_sync.progress")

_listeners: list[Listener] = []

PROGRESS = "ledger.sync.progress"
COMPLETED = "ledger.sync.completed"
FAILED = "ledger.sync.failed"


def add_listener(listener: Listener) -> None:
    _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def publish(event: str, payload: dict) -> None:
    """Hand an event to every listener; a failing listener never fails the sync.

    `emittedAt` (epoch seconds) lets a watcher measure how late an update reaches it."""
    payload = {**payload, "emittedAt": round(time.time(), 3)}
    for listener in list(_listeners):
        try:
            listener(event, payload)
        except Exception:  # noqa: BLE001 - progress is best effort by design
            log.warning("progress listener failed for %s", payload.get("syncId"), exc_info=True)


def prefect_event_listener(event: str, payload: dict) -> None:
    from prefect.events import emit_event

    emit_event(event=event, resource={"prefect.resource.id": f"ledger.vendor.{payload['vendorId']}",
                                      "ledger.sync-id": payload["syncId"]}, payload=payload)


def public(snapshot: dict) -> dict:
    """The part of a snapshot kept on the run record (sync-status)."""
    return {k: snapshot[k] for k in ("step", "stepIndex", "stepsTotal", "percent", "processed", "total", "message")}


class ProgressReporter:
    def __init__(self, sync_id: str, vendor_id: str, max_per_second: float = 4.0, heartbeat_seconds: float = 2.0):
        self.sync_id = sync_id
        self.vendor_id = vendor_id
        self.min_interval = 1.0 / max_per_second
        self.heartbeat_seconds = heartbeat_seconds
        self._last_sent = 0.0
        self._last_step: str | None = None
        self._latest: dict | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def snapshot(self, step: str, processed: int, total: int, stats: dict, message: str, state: str = "running") -> dict:
        fraction = processed / total if total else (1.0 if step == "complete" else 0.0)
        return {
            "syncId": self.sync_id, "vendorId": self.vendor_id, "state": state, "step": step,
            "stepIndex": STEPS.index(step), "stepsTotal": len(STEPS), "percent": overall_percent(step, fraction),
            "processed": processed, "total": total,
            "stats": {k: stats.get(k, 0) for k in ("synced", "skipped", "reversed", "errors")},
            "message": message,
        }

    def update(self, snapshot: dict, force: bool = False) -> None:
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

    def __exit__(self, *exc) -> None:
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
