"""REST under /api/ledger: trigger, follow, cancel and resume syncs; read the books.

Every route is authenticated; the token's vendor is the only vendor a caller
can touch. A sync id of another vendor answers 404, exactly like an id that
does not exist, so nothing tells whether another vendor's sync exists.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Annotated, Any

import socketio
from bson.decimal128 import Decimal128
from fastapi import APIRouter, Body, Path, Query, status
from fastapi.responses import JSONResponse

from api import schemas
from api.auth import forbidden, not_found
from api.deps import OrchestratorDep, SettingsDep, SocketsDep, StoreDep, VendorDep, blocking
from api.errors import StrictJsonRoute
from api.orchestrator import Orchestrator
from api.params import AsOfDay, day
from api.sockets import SYNC_COMPLETE, SYNC_ERROR, SYNC_PROGRESS, emit_to_vendor
from flows.progress import run_progress_event
from flows.runs import open_run, rejection_view, reopen_for_resume, run_view, summary_view
from ledger.clock import utc_now
from ledger.ids import candidate_ids, display_id, id_key
from ledger.kinds import by_name
from ledger.reports import account_views, trial_balance_document
from ledger.store import Store, SyncAlreadyRunning
from ledger.store.watch import DEFAULT_WATCHER, LIVE_WITHIN_SECONDS
from ledger.sync_run import RunState, SyncParameters, SyncRun
from ledger.verification import trial_balance as compute_trial_balance

log = logging.getLogger("ledger_sync.api")

# Every route of the router can answer these (the OpenAPI document lists every status a route returns).
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": schemas.ErrorResponse, "description": "missing_token, invalid_token or token_expired",
          "headers": {"WWW-Authenticate": {"description": "`Bearer error=\"<code>\"`", "schema": {"type": "string"}}}},
    503: {"model": schemas.ErrorResponse, "description": "database_unavailable: the database is not reachable"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": schemas.ErrorResponse, "description": "No such sync run for this vendor"}}
# Checked by pydantic's regex engine, where `$` is the end of the text: a trailing newline is refused (422).
SyncId = Annotated[str, Path(alias="syncId", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:@-]+$",
                              description="The run's syncId")]
# Where a started sync can be followed: lets schemathesis (and readers) chain the calls.
RUN_LINKS = {name: {"operationId": operation, "parameters": {"syncId": "$response.body#/syncId"}}
             for name, operation in (("status", "sync_status"), ("cancel", "cancel_run"), ("errors", "run_errors"))}

router = APIRouter(prefix="/api/ledger", tags=["ledger"], responses=COMMON_RESPONSES, route_class=StrictJsonRoute)


# ---- helpers -------------------------------------------------------------------

async def _owned_run(store: Store, sync_id: str, vendor_id: str) -> SyncRun:
    run = await blocking(store.runs.get, sync_id, vendor_id)
    if run is None:
        raise not_found()
    return run


async def _start_flow(sio: socketio.AsyncServer, store: Store, orchestrator: Orchestrator,
                      run: SyncRun) -> JSONResponse | None:
    """Trigger the deployment for an opened (queued) run; on failure settle the run so the vendor is not blocked."""
    try:
        flow_run_id = await orchestrator.trigger(run.vendor_id, run.sync_id, run.parameters, attempt=run.attempts)
    except Exception as error:  # noqa: BLE001 - Prefect down, deployment missing, ...
        log.error("could not trigger a flow run for %s: %s", run.sync_id, error)
        message = ("The sync could not be started: the orchestrator (Prefect) is unavailable or the deployment "
                   f"is missing ({type(error).__name__}). Try again in a moment.")
        failed = await blocking(store.runs.close, run.closed(RunState.FAILED, message, utc_now()))
        if failed is not None:
            await emit_to_vendor(sio, SYNC_ERROR, {"syncId": run.sync_id, "vendorId": run.vendor_id, "error": message,
                                                   "state": RunState.FAILED.value}, run.vendor_id)
        return JSONResponse(status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                            content={"success": False, "message": message, "syncId": run.sync_id})
    attached = await blocking(store.runs.attach_flow_run, run.sync_id, flow_run_id)
    if attached is None:  # cancelled while we were triggering: make sure the flow run never does anything
        try:
            await orchestrator.cancel(flow_run_id)
        except Exception:
            log.warning("could not cancel flow run %s of settled sync %s", flow_run_id, run.sync_id, exc_info=True)
    return None


def _conflict(message: str, sync_id: str) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_409_CONFLICT,
                        content=schemas.SyncConflict(message=message, syncId=sync_id).model_dump())


async def _queue(sio: socketio.AsyncServer, store: Store, orchestrator: Orchestrator,
                 run: SyncRun) -> JSONResponse | None:
    """Tell the room the run is queued (before any flow process exists), then start its flow run."""
    await emit_to_vendor(sio, SYNC_PROGRESS, run_progress_event(run), run.vendor_id)
    return await _start_flow(sio, store, orchestrator, run)


def _money(value: Any) -> str:
    if isinstance(value, Decimal128):
        value = value.to_decimal()
    return str(Decimal(str(value)).quantize(Decimal("0.01")))


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else (None if value is None else str(value))


def _entry_view(document: dict) -> dict:
    source = document.get("source") or {}
    return {
        "id": str(document["_id"]), "date": _iso(document.get("date")),
        "source": {"type": source.get("type"), "id": display_id(source.get("id")), "key": id_key(source.get("id")),
                   "number": source.get("number"),
                   "paymentId": None if source.get("paymentId") is None else display_id(source["paymentId"])},
        "lines": [{"account": line["account"], "debit": _money(line["debit"]), "credit": _money(line["credit"])}
                  for line in document.get("lines", [])],
        "reversalOf": document.get("reversalOf"), "syncId": document.get("syncId"),
        "postedAt": _iso(document.get("postedAt")),
    }


# ---- syncs --------------------------------------------------------------------

@router.post("/sync-data", status_code=status.HTTP_202_ACCEPTED, response_model=schemas.SyncAccepted,
             summary="Start a sync of the caller's data", operation_id="sync_data",
             responses={202: {"links": RUN_LINKS},
                        409: {"model": schemas.SyncConflict, "description": "A sync is already running (its syncId)"},
                        403: {"model": schemas.ErrorResponse, "description": "vendorId is not the token's vendor"},
                        503: {"model": schemas.SyncConflict | schemas.ErrorResponse,
                              "description": "The orchestrator (SyncConflict) or the database is unavailable"}})
async def sync_data(vendor_id: VendorDep, settings: SettingsDep, store: StoreDep, orchestrator: OrchestratorDep,
                    sio: SocketsDep, body: schemas.SyncDataRequest | None = Body(default=None)):
    body = body or schemas.SyncDataRequest()
    if body.vendorId is not None and body.vendorId != vendor_id:
        raise forbidden("This token can only start syncs of its own vendor.")
    parameters = SyncParameters(date_from=body.dateFrom, date_to=body.dateTo, types=body.types, full=body.full)
    try:
        run = await blocking(open_run, store, vendor_id, parameters, settings.ledger_incremental_overlap_seconds,
                             settings.ledger_stale_after_seconds)
    except SyncAlreadyRunning as running:
        return _conflict("A sync is already running for this vendor; follow it with its syncId.", running.sync_id)
    return await _queue(sio, store, orchestrator, run) or schemas.SyncAccepted(syncId=run.sync_id)


@router.get("/sync-status/{syncId}", response_model=schemas.RunView, responses=NOT_FOUND, operation_id="sync_status",
            summary="The latest progress snapshot of a run (the polling fallback)")
async def sync_status(sync_id: SyncId, vendor_id: VendorDep, store: StoreDep):
    return run_view(await _owned_run(store, sync_id, vendor_id))


@router.get("/sync-runs", response_model=schemas.RunList, summary="Run history with statistics, newest first",
            operation_id="sync_runs")
async def sync_runs(vendor_id: VendorDep, store: StoreDep, limit: int = Query(20, ge=1, le=200)):
    runs = await blocking(store.runs.recent, vendor_id, limit)
    return {"vendorId": vendor_id, "runs": [run_view(run) for run in runs]}


@router.post("/sync-runs/{syncId}/cancel", response_model=schemas.CancelResult, status_code=status.HTTP_202_ACCEPTED,
             summary="Cancel a queued or running sync", operation_id="cancel_run",
             responses={**NOT_FOUND, 409: {"model": schemas.CancelResult, "description": "The run is not active"}})
async def cancel_run(sync_id: SyncId, vendor_id: VendorDep, store: StoreDep, orchestrator: OrchestratorDep,
                     sio: SocketsDep):
    run = await _owned_run(store, sync_id, vendor_id)
    flagged = await blocking(store.runs.request_cancel, sync_id, vendor_id, utc_now()) if run.active else None
    if flagged is None:
        run = await _owned_run(store, sync_id, vendor_id)
        return JSONResponse(status_code=status.HTTP_409_CONFLICT, content=schemas.CancelResult(
            success=False, syncId=sync_id, state=run.state.value,
            message=f"This sync is not running (it is {run.state.value}).").model_dump())
    outcome = "cancelling"
    if flagged.flow_run_id:
        try:
            outcome = await orchestrator.cancel(flagged.flow_run_id)
        except Exception as error:  # noqa: BLE001 - the flag alone stops the flow at its next batch
            log.warning("could not cancel flow run %s of %s in Prefect: %s", flagged.flow_run_id, sync_id, error)
    if flagged.flow_run_id is None or outcome == "cancelled":
        # It never started (and now never will): settle the record here.
        settled = await blocking(store.runs.close, flagged.closed(RunState.CANCELLED, None, utc_now()),
                                 flow_run_id=flagged.flow_run_id)
        if settled is not None and flagged.flow_run_id is None:  # no Prefect event will ever tell the room
            await emit_to_vendor(sio, SYNC_COMPLETE, summary_view(settled), vendor_id)
        return schemas.CancelResult(success=True, syncId=sync_id, state=RunState.CANCELLED.value,
                                    message="The sync was cancelled before it started.")
    return schemas.CancelResult(success=True, syncId=sync_id, state=RunState.CANCELLING.value,
                                message="Cancelling: the sync stops after its current batch.")


@router.post("/sync-runs/{syncId}/resume", response_model=schemas.SyncAccepted, status_code=status.HTTP_202_ACCEPTED,
             summary="Resume a failed, crashed or cancelled sync from its last checkpoint", operation_id="resume_run",
             responses={**NOT_FOUND, 202: {"links": RUN_LINKS},
                        409: {"model": schemas.SyncConflict,
                              "description": "Not resumable, or another sync is running (its syncId)"},
                        503: {"model": schemas.SyncConflict | schemas.ErrorResponse,
                              "description": "The orchestrator (SyncConflict) or the database is unavailable"}})
async def resume_run(sync_id: SyncId, vendor_id: VendorDep, store: StoreDep, orchestrator: OrchestratorDep,
                     sio: SocketsDep):
    try:
        run = await blocking(reopen_for_resume, store, sync_id, vendor_id)
    except LookupError:
        raise not_found() from None
    except ValueError as error:
        return _conflict(str(error), sync_id)
    except SyncAlreadyRunning as running:
        return _conflict("Another sync is running for this vendor; follow it with its syncId.", running.sync_id)
    return await _queue(sio, store, orchestrator, run) or schemas.SyncAccepted(
        syncId=sync_id, message="Sync resumed from its last checkpoint. You will receive real-time updates.")


@router.get("/sync-runs/{syncId}/errors", response_model=schemas.RejectedList, responses=NOT_FOUND,
            summary="The documents a run rejected, with the field and the reason", operation_id="run_errors")
async def run_errors(sync_id: SyncId, vendor_id: VendorDep, store: StoreDep, limit: int = Query(500, ge=1, le=5000)):
    await _owned_run(store, sync_id, vendor_id)
    rows = await blocking(store.rejections.of_run, sync_id, vendor_id, limit)
    return {"syncId": sync_id, "errors": [rejection_view(row) for row in rows]}


# ---- the books ------------------------------------------------------------------

@router.get("/live", response_model=schemas.LiveStatus, operation_id="live_status",
            summary="Whether changes are posted as they happen (a watcher runs)")
async def live_status(vendor_id: VendorDep, store: StoreDep):
    return await blocking(store.watch.live, DEFAULT_WATCHER, utc_now(), LIVE_WITHIN_SECONDS)


@router.get("/trial-balance", response_model=schemas.TrialBalanceView, summary="Net balance per account",
            operation_id="trial_balance")
async def trial_balance(vendor_id: VendorDep, store: StoreDep, asOf: AsOfDay = None):
    """From the monthly balances (plus at most one month of entries for `asOf`): never re-adds the ledger."""
    balances = await blocking(store.books.current, vendor_id) if asOf is None else \
        await blocking(store.books.as_of, vendor_id, day(asOf))
    tb = compute_trial_balance(balances)
    chart = await blocking(store.accounts.chart, vendor_id)
    return {**trial_balance_document(vendor_id, tb), "accounts": account_views(tb.balances, chart)}


@router.get("/entries", response_model=schemas.EntryList, summary="The journal entries of one source document",
            operation_id="entries")
async def entries(vendor_id: VendorDep, store: StoreDep,
                  sourceId: str = Query(..., min_length=1, max_length=2000,
                                        description="The document's _id as text, or its key as entries show it "
                                                    "(`source.key`, exact for any BSON type)"),
                  sourceType: schemas.SourceTypeName | None = Query(  # type: ignore[valid-type]
                      None, description="The kind of document: its type or its step name")):
    source_type = by_name(sourceType).type if sourceType else None
    documents: list[dict[str, Any]] = []
    for candidate in candidate_ids(sourceId):  # values only: a key never decodes to an operator
        documents = await blocking(store.entries.for_source_id, vendor_id, source_type, candidate)
        if documents:
            break
    return {"vendorId": vendor_id, "sourceType": source_type, "sourceId": sourceId,
            "entries": [_entry_view(document) for document in documents]}
