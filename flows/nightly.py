"""Background syncs of every vendor: the nightly incremental and the weekly full reconcile.

A fan-out flow: it starts one run of the on-demand deployment per vendor with
source data, at most `max_parallel` at a time, and waits for them. Each vendor
run is opened in the database first, exactly as the API does, so a vendor whose
sync is already running (someone clicked "Sync Data") is skipped, never run twice.
"""

from __future__ import annotations

import time
from typing import cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment

from flows.database import get_store
from flows.deployments import FAN_OUT_FLOW_NAME, ON_DEMAND, flow_run_name, run_tags
from flows.runs import open_run
from flows.settings import get_settings
from ledger.clock import utc_now
from ledger.store import SyncAlreadyRunning
from ledger.sync_run import RunState, SyncParameters


@task(retries=3, retry_delay_seconds=[2, 5, 10], cache_policy=NO_CACHE)
def vendors_with_source_data() -> list[str]:
    return get_store().sources.vendor_ids()


def _start_vendor_run(vendor_id: str, full: bool, deployment: str) -> tuple[str, str] | None:
    """Open the vendor's run record and trigger its flow run; None when one is already running."""
    settings = get_settings()
    store = get_store()
    try:
        run = open_run(store, vendor_id, SyncParameters(full=full), settings.ledger_incremental_overlap_seconds,
                       settings.ledger_stale_after_seconds)
    except SyncAlreadyRunning:
        return None
    try:
        flow_run = cast(FlowRun, run_deployment(
            deployment, timeout=0, as_subflow=False, tags=run_tags(vendor_id, run.sync_id),
            parameters={"vendor_id": vendor_id, "sync_id": run.sync_id, "full": full},
            idempotency_key=f"{run.sync_id}#1", flow_run_name=flow_run_name(run.sync_id)))
    except Exception as error:
        store.runs.close(run.closed(RunState.FAILED, f"could not start the background sync: {error}", utc_now()))
        raise
    store.runs.attach_flow_run(run.sync_id, str(flow_run.id))
    return run.sync_id, str(flow_run.id)


@flow(name=FAN_OUT_FLOW_NAME, log_prints=False)
def sync_all_vendors(full: bool = False, max_parallel: int = 4, deployment: str = ON_DEMAND,
                     poll_seconds: float = 2.0) -> dict[str, str]:
    """Sync every vendor that has source data, `max_parallel` at a time; returns each vendor's final state."""
    logger = get_run_logger()
    waiting = vendors_with_source_data()
    running: dict[str, tuple[str, str]] = {}  # flow run id -> (vendor, sync id)
    outcome: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        while waiting or running:
            while waiting and len(running) < max_parallel:
                vendor_id = waiting.pop(0)
                try:
                    started = _start_vendor_run(vendor_id, full, deployment)
                except Exception as error:  # noqa: BLE001 - one vendor's trigger must not stop the others
                    outcome[vendor_id] = "failed: could not start"
                    logger.error("vendor=%s: the sync could not be started: %s", vendor_id, error)
                    continue
                if started is None:
                    outcome[vendor_id] = "skipped: a sync is already running"
                    logger.info("vendor=%s already has a sync running; skipped", vendor_id)
                    continue
                running[started[1]] = (vendor_id, started[0])
            time.sleep(poll_seconds)
            for flow_run_id, (vendor_id, sync_id) in list(running.items()):
                state = client.read_flow_run(UUID(flow_run_id)).state
                if state is not None and state.is_final():
                    outcome[vendor_id] = state.type.value.lower()
                    logger.info("vendor=%s sync=%s finished %s", vendor_id, sync_id, state.name)
                    del running[flow_run_id]
    failed = sorted(vendor for vendor, state in outcome.items() if state not in ("completed",) and
                    not state.startswith("skipped"))
    logger.info("%d vendors synced, %d failed%s", len(outcome) - len(failed), len(failed),
                f": {', '.join(failed)}" if failed else "")
    if failed:  # the run shows red in the Prefect UI; each vendor's run says why
        raise RuntimeError(f"{len(failed)} of {len(outcome)} vendor syncs did not complete: "
                           + ", ".join(f"{vendor} ({outcome[vendor]})" for vendor in failed))
    return outcome
