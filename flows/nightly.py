"""Background syncs: the nightly incremental and the weekly full reconcile (SPEC §10).

The nightly picks the vendors that need a sync (`ledger.selection`: documents changed, a last
sync that did not complete, rejections outstanding) with a handful of queries whatever the
number of vendors; the weekly full reconcile takes every vendor with source data. A small
vendor is synced right here, as a subflow run of `sync-vendor-ledger` on a bounded thread
pool: no process to start, no deployment to pick up. A vendor with more documents to read
than `LEDGER_OWN_FLOW_RUN_ABOVE_DOCUMENTS` gets a flow run of the on-demand deployment of
its own, on the work pool, at most `max_parallel` at a time. Either way each vendor run is
opened in the database first, exactly as the API does, so a vendor whose sync is already
running (someone clicked "Sync Data") is skipped, never run twice, and keeps its own run
record, room events and (sub)flow run in the Prefect UI. The in-process vendors go without the
per-vendor Prefect concurrency slot: their run record already guarantees one sync per vendor,
and taking the slot from many threads at once cost three times their sync (measured, 12 vendors).
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import cast
from uuid import UUID

from prefect import flow, get_run_logger, tags, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from flows.database import get_store
from flows.deployments import FAN_OUT_FLOW_NAME, ON_DEMAND, flow_run_name, run_tags
from flows.runs import open_run
from flows.settings import get_settings
from flows.sync_vendor import summary_of, sync_vendor_ledger
from ledger.clock import utc_now
from ledger.selection import Selection, every_vendor, select
from ledger.store import RunGuard, SyncAlreadyRunning
from ledger.sync_run import RunState, SyncParameters, SyncRun

HORIZON = "nightly"  # the name the nightly's horizon is kept under
SKIPPED = "skipped: a sync is already running"


@task(retries=3, retry_delay_seconds=[2, 5, 10], cache_policy=NO_CACHE)
def vendors_needing_sync(full: bool) -> Selection:
    """The vendors to sync: one aggregation per source collection and one over the runs."""
    store = get_store()
    now = utc_now()
    if full:
        return every_vendor(store.sources.changes_since(None), now)
    horizon = store.watch.horizon(HORIZON)
    overlap = timedelta(seconds=get_settings().ledger_incremental_overlap_seconds)
    changes = store.sources.changes_since(None if horizon is None else horizon - overlap)
    changed = {vendor for vendors in changes.values() for vendor in vendors}
    return select(changes, store.runs.worth_a_look(horizon, changed), overlap, now)


def _open(vendor_id: str, full: bool) -> SyncRun | None:
    """The vendor's new run record; None when one is already running."""
    settings = get_settings()
    try:
        return open_run(get_store(), vendor_id, SyncParameters(full=full), settings.ledger_incremental_overlap_seconds,
                        settings.ledger_stale_after_seconds)
    except SyncAlreadyRunning:
        return None


def _sync_here(vendor_id: str, full: bool) -> str:
    """Sync a small vendor as a subflow run of this process; its final state."""
    run = _open(vendor_id, full)
    if run is None:
        return SKIPPED
    with tags(*run_tags(vendor_id, run.sync_id)):
        try:
            summary = summary_of(sync_vendor_ledger.with_options(flow_run_name=flow_run_name(run.sync_id))(
                vendor_id, sync_id=run.sync_id, prefect_slot=False, return_state=True))
        except Exception as error:  # noqa: BLE001 - its run record says why; the other vendors go on
            get_run_logger().error("vendor=%s sync=%s failed: %s", vendor_id, run.sync_id, error)
            _close_unclaimed(run.sync_id, f"the sync could not start: {error}")
            return "failed"
    return str(summary["state"])


def _close_unclaimed(sync_id: str, error: str) -> None:
    """A subflow that failed before its body claimed the run leaves it queued: close it, so the vendor
    is not held until the stale-run check (a claimed one was closed by the flow itself)."""
    store = get_store()
    run = store.runs.get(sync_id)
    if run is not None and run.active and run.owner is None:
        store.runs.close(run.closed(RunState.FAILED, error, utc_now()), guard=RunGuard(sync_id, run.attempts))


def _start_own_run(vendor_id: str, full: bool, deployment: str) -> tuple[str, str] | None:
    """Open the vendor's run record and trigger its flow run; None when one is already running."""
    run = _open(vendor_id, full)
    if run is None:
        return None
    try:
        flow_run = cast(FlowRun, run_deployment(
            deployment, timeout=0, as_subflow=False, tags=run_tags(vendor_id, run.sync_id),
            parameters={"vendor_id": vendor_id, "sync_id": run.sync_id, "full": full},
            idempotency_key=f"{run.sync_id}#1", flow_run_name=flow_run_name(run.sync_id)))
    except Exception as error:
        get_store().runs.close(run.closed(RunState.FAILED, f"could not start the background sync: {error}",
                                          utc_now()))
        raise
    get_store().runs.attach_flow_run(run.sync_id, str(flow_run.id))
    return run.sync_id, str(flow_run.id)


def _own_runs(vendors: list[str], full: bool, max_parallel: int, deployment: str,
              poll_seconds: float) -> dict[str, str]:
    """Big vendors: a flow run of the deployment each, `max_parallel` at a time; each one's final state."""
    logger = get_run_logger()
    waiting = list(vendors)
    running: dict[str, tuple[str, str]] = {}  # flow run id -> (vendor, sync id)
    outcome: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        while waiting or running:
            while waiting and len(running) < max_parallel:
                vendor_id = waiting.pop(0)
                try:
                    started = _start_own_run(vendor_id, full, deployment)
                except Exception as error:  # noqa: BLE001 - one vendor's trigger must not stop the others
                    outcome[vendor_id] = "failed: could not start"
                    logger.error("vendor=%s: the sync could not be started: %s", vendor_id, error)
                    continue
                if started is None:
                    outcome[vendor_id] = SKIPPED
                    continue
                running[started[1]] = (vendor_id, started[0])
            time.sleep(poll_seconds)
            for flow_run_id, (vendor_id, sync_id) in list(running.items()):
                state = client.read_flow_run(UUID(flow_run_id)).state
                if state is not None and state.is_final():
                    outcome[vendor_id] = state.type.value.lower()
                    logger.info("vendor=%s sync=%s finished %s", vendor_id, sync_id, state.name)
                    del running[flow_run_id]
    return outcome


@flow(name=FAN_OUT_FLOW_NAME, log_prints=False)
def sync_all_vendors(full: bool = False, max_parallel: int = 4, deployment: str = ON_DEMAND,
                     poll_seconds: float = 2.0) -> dict[str, str]:
    """Sync the vendors that need it (every vendor with `full`); returns each one's final state."""
    logger = get_run_logger()
    selection = vendors_needing_sync(full)
    threshold = get_settings().ledger_own_flow_run_above_documents
    big = [vendor.vendor_id for vendor in selection.vendors if vendor.documents > threshold]
    small = [vendor.vendor_id for vendor in selection.vendors if vendor.documents <= threshold]
    logger.info("%d vendors need a sync (%d in flow runs of their own); %d runs read, vendors changed per kind: %s",
                len(selection.vendors), len(big), selection.runs_read, selection.changes)
    with ThreadPoolExecutor(max_workers=max(1, max_parallel), thread_name_prefix="vendor-sync") as pool:
        # Each thread runs in a copy of this flow's context: its syncs are subflow runs of this one.
        here = {vendor: pool.submit(contextvars.copy_context().run, _sync_here, vendor, full) for vendor in small}
        outcome = _own_runs(big, full, max_parallel, deployment, poll_seconds) if big else {}
        outcome.update({vendor: future.result() for vendor, future in here.items()})
    get_store().watch.save_horizon(HORIZON, selection.horizon)
    failed = sorted(vendor for vendor, state in outcome.items() if state != "completed" and state != SKIPPED)
    logger.info("%d vendors synced, %d failed%s", len(outcome) - len(failed), len(failed),
                f": {', '.join(failed)}" if failed else "")
    if failed:  # the run shows red in the Prefect UI; each vendor's run says why
        raise RuntimeError(f"{len(failed)} of {len(outcome)} vendor syncs did not complete: "
                           + ", ".join(f"{vendor} ({outcome[vendor]})" for vendor in failed))
    return outcome
