"""The per-vendor sync flow: the business process, step by step.

check existing books → sales invoices → purchase invoices → expenses → complete.
Each step is a Prefect task that retries on transient database errors only;
validation problems are data, recorded and counted, never retried. Every batch
ends with a checkpoint in the run record, so a retried task or a resumed run
continues where it stopped, and deterministic entry ids make any overlap a
no-op.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from pydantic import BaseModel, ConfigDict
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError

from flows import progress
from flows.concurrency import vendor_slot
from flows.database import get_store
from flows.document_sync import DocumentStep, LedgerInconsistent, SyncCancelled
from flows.runs import Heartbeat, open_run, reopen_for_resume, summary_view
from flows.settings import get_settings
from ledger.entries import ZERO
from ledger.sources import SYNC_TYPES, SourceType
from ledger.store import SourceQuery, as_utc, balances_from_document, balances_to_document, utc_now
from ledger.sync_run import STEP_LABELS, SyncParameters, SyncStats
from ledger.accounts import ACCOUNTS_PAYABLE, ACCOUNTS_RECEIVABLE
from ledger.verification import describe_differences, describe_failure, verify

RETRY_DELAYS = [1, 3, 8, 15]


def is_transient(task, task_run, state) -> bool:
    """Retry when the database went away or timed out; never otherwise (validation problems are data)."""
    try:
        state.result(raise_on_failure=True)
    except (ConnectionFailure, ExecutionTimeout):  # refused, reset, no server, operation timed out
        return True
    except PyMongoError as error:
        return error.timeout or error.has_error_label("RetryableWriteError")
    except Exception:  # noqa: BLE001 - everything else is not transient
        return False
    return False


class SyncContext(BaseModel):
    """What every step needs to know about the run it belongs to."""

    model_config = ConfigDict(frozen=True)

    sync_id: str
    vendor_id: str
    parameters: SyncParameters
    changed_since: dict[str, datetime | None]
    base_currency: str

    @property
    def reads_everything(self) -> bool:
        """Every document of every type is read (no date range, no change filter)."""
        return (self.parameters.covers_everything and set(self.parameters.types) == set(SYNC_TYPES)
                and all(self.changed_since.get(t) is None for t in SYNC_TYPES))


step_task = task(retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS, retry_jitter_factor=0.2,
                 retry_condition_fn=is_transient, cache_policy=NO_CACHE)


@step_task(name="check_existing")
def check_existing(context: SyncContext) -> dict:
    """Verify the books as they are before writing anything: every entry balances,
    the trial balance nets to zero.

    Entries are append-only, so when nothing was posted since the last completed
    sync sealed its (verified) totals, those totals stand; a full sync always
    re-adds everything on the server.
    """
    store = get_store()
    run = _start_step(context, "check_existing")
    if run is None:  # resumed: the books were checked before this run wrote anything
        return store.run(context.sync_id)["ledgerAtStart"]
    seal = (store.latest_seal(context.vendor_id) or {}).get("ledger")
    if seal and not context.parameters.full and seal["runNumber"] == run["runNumber"] - 1:
        balances, unbalanced, count = balances_from_document(seal["balances"]), 0, seal["entries"]
        basis = f"sealed by {seal['syncId']}"
    else:
        balances, unbalanced, count = _recount(store, context.vendor_id)
        basis = "recomputed"
    net = sum(balances.debits.values(), ZERO) - sum(balances.credits.values(), ZERO)
    if unbalanced or net:
        raise LedgerInconsistent(
            f"the existing ledger does not balance ({unbalanced} unbalanced entries, net {net}); "
            "nothing was written — investigate before syncing")
    at_start = {"entries": count, "balances": balances_to_document(balances), "basis": basis}
    _finish_step(context, "check_existing", run, {"ledgerAtStart": at_start},
                 message=f"{count} entries already posted, books balanced")
    return at_start


def _recount(store, vendor_id: str):
    """Balances, unbalanced entries and entry count, added up by the server from every entry."""
    summary = store.ledger_summary(vendor_id)
    return store.balances(vendor_id), summary["unbalanced"], summary["entries"]


def _sync_documents(context: SyncContext, sync_type: str) -> dict:
    """Read the vendor's documents of one type in batches; post, reverse, reject; checkpoint each batch."""
    run = _start_step(context, sync_type)
    if run is None:  # a resumed run: this step finished before the interruption
        return get_store().run(context.sync_id)["stats"][sync_type]
    step = DocumentStep(context, sync_type, run, get_run_logger())
    type_stats = step.run()
    _finish_step(context, sync_type, run, {}, stats=step.stats, processed=step.total or step.processed,
                 message=f"{STEP_LABELS[sync_type]}: {type_stats.synced} posted, {type_stats.reversed} reversed, "
                         f"{type_stats.skipped} unchanged, {type_stats.errors} rejected")
    return type_stats.model_dump()


sales_invoices = step_task(name="sales_invoices")(lambda context: _sync_documents(context, "sales_invoices"))
purchase_invoices = step_task(name="purchase_invoices")(lambda context: _sync_documents(context, "purchase_invoices"))
expenses = step_task(name="expenses")(lambda context: _sync_documents(context, "expenses"))
DOCUMENT_STEPS = {"sales_invoices": sales_invoices, "purchase_invoices": purchase_invoices, "expenses": expenses}


@step_task(name="complete")
def complete(context: SyncContext) -> dict:
    """Final verification and statistics, on what the database holds.

    The server adds up the entries carrying this sync's id (one aggregation on an
    index); they must be what the sync meant to write, and with the books before the
    sync the trial balance must net to zero. The receivable and payable accounts must
    equal the open balances of the documents behind them: a run that read every
    document added those up on the way; any other carries the books' figures before it
    plus the change of the documents it read. Any difference fails the sync, naming the
    account and the amount. The result is sealed for the next sync.
    """
    store = get_store()
    run = _start_step(context, "complete", unless_completed=False)
    start = run["ledgerAtStart"]
    written = store.written_by(context.vendor_id, context.sync_id)
    meant = balances_from_document(run.get("ledgerDelta", {}))
    mismatch = describe_differences(written.balances, meant)
    if mismatch or written.entries != run.get("entriesWritten", 0):
        raise LedgerInconsistent(
            f"the ledger does not hold what this sync wrote ({written.entries} entries carry its id, it wrote "
            f"{run.get('entriesWritten', 0)}){': ' + mismatch if mismatch else ''}. Something else changed "
            "ledger_entries during the sync: run `ledger-sync sync --full` once it is explained")
    if run.get("attempts", 1) == 1:
        before = balances_from_document(start["balances"])
        unbalanced, count = written.unbalanced, start["entries"] + written.entries
    else:  # other runs may have written between this run's attempts: take the books as they are
        everything, unbalanced, count = _recount(store, context.vendor_id)
        before = everything.minus(written.balances)
    balances = before.plus(written.balances)
    receivable, payable = _open_documents(context, run, before)
    verification = verify(balances, unbalanced, receivable, payable)
    report = _verification_document(verification)
    if not verification.ok:
        store.update_run(context.sync_id, {"verification": report})
        raise LedgerInconsistent("the books do not verify after the sync: " + describe_failure(verification))
    seal = {"syncId": context.sync_id, "runNumber": run["runNumber"], "entries": count,
            "balances": balances_to_document(balances)}
    _finish_step(context, "complete", run, {"verification": report, "ledger": seal,
                                            "documentsOpen": {"receivable": str(receivable), "payable": str(payable)}},
                 message="Books balanced; receivables and payables agree with the documents")
    return report


def _open_documents(context: SyncContext, run: dict, before) -> tuple[Decimal, Decimal]:
    """Open receivables and payables per the source documents (see `complete`)."""
    if context.reads_everything:
        amounts = {t: Decimal(run.get("openAmounts", {}).get(t, "0")) for t in SYNC_TYPES}
        return amounts["sales_invoices"], amounts["purchase_invoices"] + amounts["expenses"]
    change = {t: Decimal(run.get("openChange", {}).get(t, "0")) for t in SYNC_TYPES}
    return (before.balance(ACCOUNTS_RECEIVABLE) + change["sales_invoices"],
            -before.balance(ACCOUNTS_PAYABLE) + change["purchase_invoices"] + change["expenses"])


@flow(name="sync-vendor-ledger", log_prints=False)
def sync_vendor_ledger(vendor_id: str, date_from: str | None = None, date_to: str | None = None,
                       types: list[str] | None = None, full: bool = False, sync_id: str | None = None) -> dict:
    """Post one vendor's invoices, payments and expenses into its ledger.

    Without `sync_id` a new run is opened (refused if the vendor has one
    running); with one, that run is picked up: the queued run the API opened,
    or an interrupted run being resumed from its checkpoints.
    """
    logger = get_run_logger()
    settings = get_settings()
    store = get_store()
    parameters = SyncParameters(dateFrom=date_from, dateTo=date_to, types=types, full=full)
    if sync_id is None:
        run = open_run(store, vendor_id, parameters, settings.ledger_incremental_overlap_seconds,
                       settings.ledger_stale_after_seconds)
    else:
        run = store.run(sync_id, vendor_id)
        if run is None:
            raise LookupError(f"no sync {sync_id} for vendor {vendor_id}")
        if not run.get("active"):
            if run.get("flowRunId") and run.get("flowRunId") == _flow_run_id():
                return summary_view(run)  # this very flow run was already settled (cancelled before it started)
            run = reopen_for_resume(store, sync_id, vendor_id)
        parameters = SyncParameters(**run["parameters"])
    sync_id = run["syncId"]
    context = SyncContext(sync_id=sync_id, vendor_id=vendor_id, parameters=parameters,
                          changed_since={k: as_utc(v) for k, v in run["since"].items()},
                          base_currency=store.base_currency(vendor_id, settings.ledger_base_currency))
    heartbeat = Heartbeat(store, sync_id, every_seconds=max(1.0, settings.ledger_stale_after_seconds / 4))
    with vendor_slot(vendor_id, enabled=settings.ledger_vendor_concurrency_limit), heartbeat:
        store.update_run(sync_id, {"state": "running", "flowRunId": _flow_run_id(), "heartbeatAt": utc_now()})
        logger.info("sync started vendor=%s sync=%s parameters=%s", vendor_id, sync_id, parameters.as_document())
        try:
            check_existing(context)
            for sync_type, step in DOCUMENT_STEPS.items():
                if sync_type in parameters.types:
                    step(context)
            complete(context)
        except SyncCancelled:
            summary = summary_view(_finish_run(context, "cancelled", None))
            logger.warning("sync cancelled vendor=%s sync=%s", vendor_id, sync_id)
            progress.publish(progress.COMPLETED, summary)
            return summary
        except Exception as error:
            message = _explain(error)
            logger.error("sync failed vendor=%s sync=%s: %s", vendor_id, sync_id, message)
            # Tell the room first: when the database is what failed, the record may not be writable.
            progress.publish(progress.FAILED, {"syncId": sync_id, "vendorId": vendor_id, "error": message,
                                               "state": "failed"})
            try:
                _finish_run(context, "failed", message)
            except PyMongoError:
                logger.error("sync %s could not be marked failed; the stale-run detector will mark it crashed",
                             sync_id)
            raise
        summary = summary_view(_finish_run(context, "completed", None))
    logger.info("sync completed vendor=%s sync=%s stats=%s", vendor_id, sync_id, summary["stats"]["total"])
    progress.publish(progress.COMPLETED, summary)
    return summary


def _finish_run(context: SyncContext, state: str, error: str | None) -> dict:
    store = get_store()
    run = store.run(context.sync_id)
    ended = utc_now()
    changes: dict[str, Any] = {"state": state, "error": error, "endedAt": ended,
                               "durationMs": int((ended - as_utc(run["startedAt"])).total_seconds() * 1000)}
    if state == "completed":
        changes["coverage"] = list(context.parameters.types) if context.parameters.covers_everything else []
        changes["progress"] = {**(run.get("progress") or {}), "step": "complete", "stepIndex": 4, "percent": 100.0,
                               "message": "Sync complete"}
    for name, step in run["steps"].items():
        if step["state"] == "running":
            changes[f"steps.{name}.state"] = "failed" if state == "failed" else "cancelled"
    return store.finish_run(context.sync_id, changes)


def _start_step(context: SyncContext, step: str, unless_completed: bool = True) -> dict | None:
    """Mark a step running and tell the room, in one command; the run record as it now is.
    None when the step had completed before (a resumed run carries on after it)."""
    reporter = progress.ProgressReporter(context.sync_id, context.vendor_id)
    snapshot = reporter.snapshot(step, 0, 0, {}, f"{STEP_LABELS[step]}…")
    now = utc_now()
    run = get_store().update_run(
        context.sync_id, {f"steps.{step}.state": "running", f"steps.{step}.startedAt": now, "heartbeatAt": now,
                          **_shown(snapshot)},
        at_least={"progress.percent": snapshot["percent"]}, unless_completed=step if unless_completed else None)
    if run is None:
        return None
    if run.get("cancelRequested"):
        raise SyncCancelled()
    stats = run["stats"]["total"]
    snapshot["stats"] = {k: stats.get(k, 0) for k in ("synced", "skipped", "reversed", "errors")}
    snapshot["percent"] = run["progress"]["percent"]  # a resumed run's bar never goes back
    progress.publish(progress.PROGRESS, snapshot)
    return run


def _finish_step(context: SyncContext, step: str, at_start: dict, extra: dict, message: str,
                 stats: SyncStats | None = None, processed: int = 0) -> None:
    """Mark a step completed and tell the room, in one command. `at_start` is the run record
    `_start_step` returned; `stats` what the step leaves the run's statistics at, if it changed them."""
    now = utc_now()
    started = as_utc(at_start["steps"][step].get("startedAt")) or now
    totals = (stats or SyncStats.from_document(at_start["stats"])).total
    snapshot = progress.ProgressReporter(context.sync_id, context.vendor_id).snapshot(
        step, processed, processed, totals.model_dump(), message)
    run = get_store().update_run(context.sync_id, {
        f"steps.{step}.state": "completed", f"steps.{step}.endedAt": now,
        f"steps.{step}.durationMs": int((now - started).total_seconds() * 1000), "heartbeatAt": now,
        **_shown(snapshot), **extra}, at_least={"progress.percent": snapshot["percent"]})
    snapshot["percent"] = run["progress"]["percent"]
    progress.publish(progress.PROGRESS, snapshot)


def _shown(snapshot: dict) -> dict:
    """The run record's progress fields for a snapshot, except the percent (only ever raised)."""
    return {f"progress.{name}": value for name, value in progress.public(snapshot).items() if name != "percent"}


def _verification_document(verification) -> dict:
    tb = verification.trial_balance
    return {
        "ok": verification.ok, "balanced": tb.is_balanced, "totalDebit": str(tb.total_debit),
        "totalCredit": str(tb.total_credit), "unbalancedEntries": verification.unbalanced_entries,
        "receivables": {"ok": verification.receivables.ok, "ledger": str(verification.receivables.ledger),
                        "documents": str(verification.receivables.documents)},
        "payables": {"ok": verification.payables.ok, "ledger": str(verification.payables.ledger),
                     "documents": str(verification.payables.documents)},
    }


def _explain(error: Exception) -> str:
    if isinstance(error, ConnectionFailure | ExecutionTimeout) or getattr(error, "timeout", False):
        return ("The database could not be reached and retries ran out. Check that MongoDB is up, "
                "then resume this sync.")
    if isinstance(error, LedgerInconsistent):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _flow_run_id() -> str | None:
    try:
        return str(get_run_context().flow_run.id)
    except Exception:  # noqa: BLE001 - outside a flow run there is none
        return None


logging.getLogger("ledger_sync").addHandler(logging.NullHandler())
progress.add_listener(progress.prefect_event_listener)
