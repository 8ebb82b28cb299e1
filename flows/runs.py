"""Sync-run records: opening one per vendor at a time, resuming, finishing, and
the public view of a run that the CLI, the API and the UI all show."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from ledger.sources import SYNC_TYPES
from ledger.store import LedgerStore, SyncAlreadyRunning, utc_now
from ledger.sync_run import ALL_TYPES, STEPS, SyncParameters, SyncStats

RESUMABLE_STATES = ("failed", "crashed", "cancelled")
log = logging.getLogger("ledger_sync.runs")


VENDOR_TAG = "ledger-vendor:"
SYNC_TAG = "ledger-sync:"


def run_tags(vendor_id: str, sync_id: str) -> list[str]:
    """Tags on a sync's flow run: how the Prefect UI filters by vendor and the API maps runs back."""
    return ["ledger-sync", f"{VENDOR_TAG}{vendor_id}", f"{SYNC_TAG}{sync_id}"]


def new_sync_id(vendor_id: str, now: datetime) -> str:
    return f"sync_{vendor_id}_{int(now.timestamp() * 1000)}"


def open_run(store: LedgerStore, vendor_id: str, parameters: SyncParameters, overlap_seconds: int,
             stale_after_seconds: int, state: str = "queued") -> dict:
    """Create the run record, claiming the vendor's single active slot.

    Raises `SyncAlreadyRunning` with the running one's id. A run whose heartbeat
    stopped is marked crashed first, so a dead process never blocks a vendor.
    """
    mark_stale_runs(store, stale_after_seconds, vendor_id=vendor_id)
    now = utc_now()
    since, recheck = {}, {}
    for sync_type in ALL_TYPES:
        previous = None if parameters.full else store.last_covering_run(vendor_id, sync_type)
        since[sync_type] = previous["startedAt"] - timedelta(seconds=overlap_seconds) if previous else None
        # Documents it rejected are read again until fixed, so their errors stay in view.
        recheck[sync_type] = store.rejected_source_ids(previous["syncId"], SYNC_TYPES[sync_type]) if previous else []
    run = {
        "syncId": new_sync_id(vendor_id, now), "vendorId": vendor_id, "state": state,
        "parameters": parameters.as_document(), "since": since, "recheck": recheck,
        "steps": {step: {"state": "pending" if _selected(step, parameters) else "skipped", "processed": 0, "total": 0}
                  for step in STEPS},
        "stats": SyncStats().as_document(), "errorsCount": 0, "error": None,
        "progress": {"step": STEPS[0], "stepIndex": 0, "stepsTotal": len(STEPS), "percent": 0.0, "processed": 0,
                     "total": 0, "message": "Queued"},
        "startedAt": now, "heartbeatAt": now, "endedAt": None, "flowRunId": None, "attempts": 1,
        "runNumber": store.next_run_number(vendor_id),
    }
    return store.create_run(run)


def mark_stale_runs(store: LedgerStore, stale_after_seconds: int, vendor_id: str | None = None) -> list[str]:
    """Runs whose process stopped sending heartbeats are crashed (and resumable); their ids."""
    return [run["syncId"] for run in crash_stale_runs(store, stale_after_seconds, vendor_id)]


def crash_stale_runs(store: LedgerStore, stale_after_seconds: int, vendor_id: str | None = None) -> list[dict]:
    """Mark crashed every active run without a heartbeat for `stale_after_seconds`; the records
    this call settled (several callers may race: each run is settled, and returned, once)."""
    cutoff = utc_now() - timedelta(seconds=stale_after_seconds)
    crashed = []
    for run in store.stale_runs(cutoff):
        if vendor_id is not None and run["vendorId"] != vendor_id:
            continue
        ended = utc_now()
        changes = {"state": "crashed", "endedAt": ended,
                   "error": "The sync stopped responding (its process died). Resume it to continue."}
        started = run.get("startedAt")
        if started is not None:
            changes["durationMs"] = int((ended - (started if started.tzinfo else started.replace(tzinfo=ended.tzinfo)))
                                        .total_seconds() * 1000)
        for name, step in (run.get("steps") or {}).items():
            if step.get("state") == "running":
                changes[f"steps.{name}.state"] = "failed"
        settled = store.finish_stale_run(run["_id"], cutoff, changes)
        if settled is not None:
            log.warning("sync %s of vendor %s had no heartbeat since %s: marked crashed", run["_id"], run["vendorId"],
                        run.get("heartbeatAt"))
            crashed.append(settled)
    return crashed


class Heartbeat:
    """Keeps the run's `heartbeatAt` fresh while its process lives, so the stale-run
    detector tells a crashed run (no heartbeat) from a slow one."""

    def __init__(self, store: LedgerStore, sync_id: str, every_seconds: float):
        self.store = store
        self.sync_id = sync_id
        self.every_seconds = every_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{sync_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.every_seconds):
            try:
                self.store.runs.update_one({"_id": self.sync_id, "active": True}, {"$set": {"heartbeatAt": utc_now()}})
            except Exception as error:  # noqa: BLE001 - the steps report database trouble themselves
                log.warning("heartbeat of %s not recorded: %s", self.sync_id, error)


def reopen_for_resume(store: LedgerStore, sync_id: str, vendor_id: str) -> dict:
    """Make an interrupted run active again; its checkpoints stay, so it continues where it stopped."""
    run = store.run(sync_id, vendor_id)
    if run is None:
        raise LookupError(f"no sync {sync_id}")
    if run["state"] not in RESUMABLE_STATES:
        raise ValueError(f"sync {sync_id} is {run['state']}; only a failed, crashed or cancelled sync can be resumed")
    now = utc_now()
    return store.reactivate_run(sync_id, {"state": "queued", "error": None, "endedAt": None, "heartbeatAt": now,
                                          "runNumber": store.next_run_number(vendor_id),
                                          "cancelRequested": False, "attempts": run.get("attempts", 1) + 1, "flowRunId": None,
                                          "progress.message": "Queued to resume"})


def _selected(step: str, parameters: SyncParameters) -> bool:
    return step in ("check_existing", "complete") or step in parameters.types


def run_view(run: dict) -> dict:
    """The public shape of a run (sync-status, sync-runs, `--json`)."""
    started, ended = run.get("startedAt"), run.get("endedAt")
    duration_ms = run.get("durationMs")
    if duration_ms is None and started is not None:
        duration_ms = int(((ended or utc_now()) - started).total_seconds() * 1000)
    steps = []
    for name in STEPS:
        step = run.get("steps", {}).get(name, {})
        steps.append({"name": name, "state": step.get("state", "pending"), "processed": step.get("processed", 0),
                      "total": step.get("total", 0), "startedAt": _iso(step.get("startedAt")),
                      "endedAt": _iso(step.get("endedAt")), "durationMs": step.get("durationMs")})
    scanned = run.get("stats", {}).get("total", {}).get("scanned", 0)
    return {
        "syncId": run["syncId"], "vendorId": run["vendorId"], "state": run["state"],
        "parameters": run.get("parameters", {}), "progress": run.get("progress"), "steps": steps,
        "stats": SyncStats.from_document(run.get("stats")).as_document(), "verification": run.get("verification"),
        "error": run.get("error"), "errorsCount": run.get("errorsCount", 0), "durationMs": duration_ms,
        "documentsPerSecond": round(scanned * 1000 / duration_ms, 1) if duration_ms else None,
        "startedAt": _iso(started), "endedAt": _iso(ended), "flowRunId": run.get("flowRunId"),
        "resumable": run["state"] in RESUMABLE_STATES, "attempts": run.get("attempts", 1),
    }


def summary_view(run: dict) -> dict:
    """The `--json` / `sync_complete` shape of SPEC §5."""
    view = run_view(run)
    return {"syncId": view["syncId"], "vendorId": view["vendorId"], "state": view["state"], "stats": view["stats"],
            "durationMs": view["durationMs"], "verification": view["verification"], "error": view["error"]}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


__all__ = ["SyncAlreadyRunning", "open_run", "reopen_for_resume", "mark_stale_runs", "crash_stale_runs", "run_view", "summary_view",
           "new_sync_id", "RESUMABLE_STATES"]
