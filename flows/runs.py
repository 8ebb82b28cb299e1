"""Sync-run records: opening one per vendor at a time, resuming, closing, and
the public view of a run that the CLI, the API and the UI all show."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from ledger.clock import iso, utc_now
from ledger.ids import display_id, id_key
from ledger.kinds import kinds
from ledger.store import RunGuard, Store
from ledger.sync_run import RunState, SyncParameters, SyncRun, SyncStats, step_label, steps

log = logging.getLogger("ledger_sync.runs")


def new_sync_id(vendor_id: str, now: datetime) -> str:
    return f"sync_{vendor_id}_{int(now.timestamp() * 1000)}"


def open_run(store: Store, vendor_id: str, parameters: SyncParameters, overlap_seconds: int,
             stale_after_seconds: int, state: RunState = RunState.QUEUED) -> SyncRun:
    """Create the run record, claiming the vendor's single active slot.

    Raises `SyncAlreadyRunning` with the running one's id. A run whose heartbeat
    stopped is marked crashed first, so a dead process never blocks a vendor.
    """
    crash_stale_runs(store, stale_after_seconds, vendor_id=vendor_id)
    now = utc_now()
    since: dict[str, datetime | None] = {}
    recheck: dict[str, list[Any]] = {}
    for kind in kinds():
        previous = None if parameters.full else store.runs.last_covering(vendor_id, kind.step)
        started = previous.started_at if previous else None
        since[kind.step] = started - timedelta(seconds=overlap_seconds) if started else None
        # Documents it rejected are read again until fixed, so their errors stay in view.
        recheck[kind.step] = store.rejections.source_ids(previous.sync_id, kind.type) if previous else []
    run = SyncRun.new(new_sync_id(vendor_id, now), vendor_id, parameters, since, recheck,
                      store.vendors.next_run_number(vendor_id), now, state=state)
    return store.runs.create(run)


def crash_stale_runs(store: Store, stale_after_seconds: int, vendor_id: str | None = None) -> list[SyncRun]:
    """Mark crashed every active run without a heartbeat for `stale_after_seconds`; the records
    this call settled (several callers may race: each run is settled, and returned, once)."""
    cutoff = utc_now() - timedelta(seconds=stale_after_seconds)
    crashed = []
    for run in store.runs.stale(cutoff):
        if vendor_id is not None and run.vendor_id != vendor_id:
            continue
        closed = run.closed(RunState.CRASHED, "The sync stopped responding (its process died). Resume it to "
                                              "continue.", utc_now())
        settled = store.runs.close(closed, heartbeat_before=cutoff)
        if settled is not None:
            log.warning("sync %s of vendor %s had no heartbeat since %s: marked crashed", run.sync_id, run.vendor_id,
                        run.heartbeat_at)
            crashed.append(settled)
    return crashed


def mark_stale_runs(store: Store, stale_after_seconds: int, vendor_id: str | None = None) -> list[str]:
    """Runs whose process stopped sending heartbeats are crashed (and resumable); their ids."""
    return [run.sync_id for run in crash_stale_runs(store, stale_after_seconds, vendor_id)]


def reopen_for_resume(store: Store, sync_id: str, vendor_id: str) -> SyncRun:
    """Make an interrupted run active again; its checkpoints stay, so it continues where it stopped.
    Of several resumes of one attempt at once, exactly one wins."""
    run = store.runs.get(sync_id, vendor_id)
    if run is None:
        raise LookupError(f"no sync {sync_id}")
    if not run.resumable:
        raise ValueError(f"sync {sync_id} is {run.state}; only a failed, crashed or cancelled sync can be resumed")
    reopened = store.runs.reopen(sync_id, vendor_id, run.attempts, store.vendors.next_run_number(vendor_id),
                                 utc_now())
    if reopened is None:
        raise ValueError(f"sync {sync_id} is being resumed already")
    return reopened


class Heartbeat:
    """Keeps the run's `heartbeatAt` fresh while its process lives, so the stale-run
    detector tells a crashed run (no heartbeat) from a slow one. Stops beating once
    the attempt is no longer current (`fenced` is then set)."""

    def __init__(self, store: Store, guard: RunGuard, every_seconds: float):
        self.store = store
        self.guard = guard
        self.every_seconds = every_seconds
        self.fenced = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{guard.sync_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.every_seconds):
            try:
                if not self.store.runs.beat(self.guard, utc_now()):
                    log.warning("sync %s: attempt %d is no longer current; heartbeat stopped", self.guard.sync_id,
                                self.guard.attempt)
                    self.fenced.set()
                    return
            except Exception as error:  # noqa: BLE001 - the steps report database trouble themselves
                log.warning("heartbeat of %s not recorded: %s", self.guard.sync_id, error)


def run_view(run: SyncRun, now: datetime | None = None) -> dict[str, Any]:
    """The public shape of a run (sync-status, sync-runs, `--json`)."""
    duration_ms = run.duration_ms if run.state.finished else run.running_ms(now or utc_now())
    view_steps = []
    for name in steps():
        step = run.step(name)
        view_steps.append({"name": name, "label": step_label(name), "state": step.state.value,
                           "processed": step.processed, "total": step.total, "startedAt": iso(step.started_at),
                           "endedAt": iso(step.ended_at), "durationMs": step.duration_ms})
    stats = run.sync_stats
    return {
        "syncId": run.sync_id, "vendorId": run.vendor_id, "state": run.state.value, "parameters": run.parameters,
        "progress": run.progress.model_dump(by_alias=True), "steps": view_steps, "stats": stats.as_document(),
        "verification": run.verification, "error": run.error, "errorsCount": run.errors_count,
        "durationMs": duration_ms,
        "documentsPerSecond": round(stats.total.scanned * 1000 / duration_ms, 1) if duration_ms else None,
        "startedAt": iso(run.started_at), "endedAt": iso(run.ended_at), "flowRunId": run.flow_run_id,
        "resumable": run.resumable, "attempts": run.attempts,
        "ledgerEntries": run.ledger.get("entries") if run.ledger else None,
    }


def rejection_view(record: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a rejected document (the API's run errors, `ledger-sync errors`)."""
    return {"sourceType": record.get("sourceType"), "sourceId": display_id(record.get("sourceId")),
            "sourceKey": id_key(record.get("sourceId")), "number": record.get("number"), "date": record.get("date"),
            "amount": record.get("amount"), "field": record.get("field"),
            "reason": record.get("reason") or "", "recordedAt": iso(record.get("recordedAt"))}


def summary_view(run: SyncRun) -> dict[str, Any]:
    """The `--json` / `sync_complete` shape of SPEC §5."""
    view = run_view(run)
    return {key: view[key] for key in ("syncId", "vendorId", "state", "stats", "durationMs", "verification", "error")}


__all__ = ["SyncStats", "crash_stale_runs", "mark_stale_runs", "new_sync_id", "open_run", "rejection_view",
           "reopen_for_resume", "run_view", "summary_view"]
