"""The per-vendor sync flow: the business process, step by step.

check existing books → one step per kind of document (sales invoices, purchase
invoices, expenses, …) → complete. Each step is a Prefect task that retries on
transient database errors only; validation problems are data, recorded and
counted, never retried. Every batch ends with a checkpoint in the run record, so
a retried task or a resumed run continues where it stopped, and deterministic
entry ids make any overlap a no-op.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError

from flows import progress
from flows.concurrency import vendor_slot
from flows.context import SyncCancelled, SyncContext
from flows.database import get_store
from flows.deployments import FLOW_NAME
from flows.document_step import DocumentStep
from flows.runs import Heartbeat, open_run, reopen_for_resume, summary_view
from flows.settings import get_settings
from ledger.clock import utc_now
from ledger.entries import ZERO
from ledger.kinds import Side, by_step, kinds
from ledger.store import EntryIdCollision, Fenced, Store
from ledger.store.codec import balances_from_document, balances_to_document
from ledger.store.runs import field, progress_changes
from ledger.sync_run import (
    CHECK_EXISTING,
    COMPLETE,
    RunState,
    StepState,
    SyncParameters,
    SyncRun,
    SyncStats,
    kinds_selected,
    step_label,
)
from ledger.verification import Balances, LedgerInconsistent, describe_differences, describe_failure, verify

RETRY_DELAYS = [1, 3, 8, 15]


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry when the database went away or timed out; never otherwise (validation problems are data)."""
    try:
        state.result(raise_on_failure=True)
    except (ConnectionFailure, ExecutionTimeout):  # refused, reset, no server, operation timed out
        return True
    except PyMongoError as error:
        return bool(error.timeout or error.has_error_label("RetryableWriteError"))
    except Exception:  # noqa: BLE001 - everything else is not transient
        return False
    return False


STEP_RETRIES: dict[str, Any] = {"retries": len(RETRY_DELAYS), "retry_delay_seconds": RETRY_DELAYS,
                                "retry_jitter_factor": 0.2, "retry_condition_fn": is_transient,
                                "cache_policy": NO_CACHE}


@task(name=CHECK_EXISTING, **STEP_RETRIES)
def check_existing(context: SyncContext) -> dict[str, Any]:
    """Verify the books as they are before writing anything: every entry balances,
    the trial balance nets to zero.

    Entries are append-only, so when nothing was posted since the last completed
    sync sealed its (verified) totals, those totals stand; a full sync always
    re-adds everything on the server.
    """
    store = get_store()
    run = _start_step(context, CHECK_EXISTING)
    if run is None:  # resumed: the books were checked before this run wrote anything
        again = store.runs.get(context.sync_id)
        return (again.ledger_at_start if again else None) or {}
    seal = store.runs.latest_seal(context.vendor_id)
    sealed = seal.ledger if seal is not None else None
    if sealed and not context.parameters.full and sealed["runNumber"] == run.run_number - 1:
        balances, unbalanced, count = balances_from_document(sealed["balances"]), 0, sealed["entries"]
        basis = f"sealed by {sealed['syncId']}"
    else:
        balances, unbalanced, count = _recount(store, context.vendor_id)
        basis = "recomputed"
    net = sum(balances.debits.values(), ZERO) - sum(balances.credits.values(), ZERO)
    if unbalanced or net:
        raise LedgerInconsistent(
            f"the existing ledger does not balance ({unbalanced} unbalanced entries, net {net}); "
            "nothing was written — investigate before syncing")
    at_start = {"entries": count, "balances": balances_to_document(balances), "basis": basis}
    _finish_step(context, CHECK_EXISTING, run, {field("ledger_at_start"): at_start},
                 message=f"{count:,} entries already posted, books balanced")
    return at_start


@task(name="sync_documents", task_run_name="{step}", **STEP_RETRIES)
def sync_documents(context: SyncContext, step: str) -> dict[str, Any]:
    """Read the vendor's documents of one kind in batches; post, reverse, reject; checkpoint each batch."""
    kind = by_step(step)
    run = _start_step(context, step)
    if run is None:  # a resumed run: this step finished before the interruption
        again = get_store().runs.get(context.sync_id)
        return (again.sync_stats if again else SyncStats()).of(step).model_dump()
    document_step = DocumentStep(context, kind, run, get_run_logger())
    stats = document_step.run()
    _finish_step(context, step, run, {}, stats=document_step.stats,
                 processed=document_step.total or document_step.processed,
                 message=f"{kind.label}: {stats.synced:,} posted, {stats.reversed:,} reversed, "
                         f"{stats.skipped:,} unchanged, {stats.errors:,} rejected")
    get_run_logger().info("%s vendor=%s sync=%s: %d documents, %d posted, %d reversed, %d unchanged, %d rejected",
                          step, context.vendor_id, context.sync_id, stats.scanned, stats.synced, stats.reversed,
                          stats.skipped, stats.errors)
    return stats.model_dump()


@task(name=COMPLETE, **STEP_RETRIES)
def complete(context: SyncContext) -> dict[str, Any]:
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
    run = _start_step(context, COMPLETE, unless_completed=False)
    assert run is not None and run.ledger_at_start is not None
    start = run.ledger_at_start
    written = store.entries.written_by(context.vendor_id, context.sync_id)
    meant = balances_from_document(run.ledger_delta)
    mismatch = describe_differences(written.balances, meant)
    if mismatch or written.entries != run.entries_written:
        raise LedgerInconsistent(
            f"the ledger does not hold what this sync wrote ({written.entries} entries carry its id, it wrote "
            f"{run.entries_written}){': ' + mismatch if mismatch else ''}. Something else changed ledger_entries "
            "during the sync: run `ledger-sync sync --full` once it is explained")
    if run.attempts == 1:
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
        store.runs.update(context.guard, {field("verification"): report})
        raise LedgerInconsistent("the books do not verify after the sync: " + describe_failure(verification))
    seal = {"syncId": context.sync_id, "runNumber": run.run_number, "entries": count,
            "balances": balances_to_document(balances)}
    _finish_step(context, COMPLETE, run, {field("verification"): report, field("ledger"): seal,
                                          field("documents_open"): {"receivable": str(receivable),
                                                                    "payable": str(payable)}},
                 message="Books balanced; receivables and payables agree with the documents")
    return report


def _open_documents(context: SyncContext, run: SyncRun, before: Balances) -> tuple[Decimal, Decimal]:
    """Open receivables and payables per the source documents (see `complete`)."""
    totals = {Side.RECEIVABLE: ZERO, Side.PAYABLE: ZERO}
    for kind in kinds():
        if context.reads_everything:
            totals[kind.side] += Decimal(run.open_amounts.get(kind.step, "0"))
        else:
            totals[kind.side] += Decimal(run.open_change.get(kind.step, "0"))
    if not context.reads_everything:
        for side in totals:
            totals[side] += side.open_balance(before.balance(side.control_account))
    return totals[Side.RECEIVABLE], totals[Side.PAYABLE]


def _recount(store: Store, vendor_id: str) -> tuple[Balances, int, int]:
    """Balances, unbalanced entries and entry count, added up by the server from every entry."""
    summary = store.entries.summary(vendor_id)
    return store.entries.balances(vendor_id), summary["unbalanced"], summary["entries"]


@flow(name=FLOW_NAME, log_prints=False)
def sync_vendor_ledger(vendor_id: str, date_from: str | None = None, date_to: str | None = None,
                       types: list[str] | None = None, full: bool = False,
                       sync_id: str | None = None) -> dict[str, Any]:
    """Post one vendor's invoices, payments and expenses into its ledger.

    Without `sync_id` a new run is opened (refused if the vendor has one
    running); with one, that run is picked up: the queued run the API opened,
    or an interrupted run being resumed from its checkpoints.
    """
    logger = get_run_logger()
    settings = get_settings()
    store = get_store()
    if sync_id is None:
        parameters = SyncParameters(date_from=date_from, date_to=date_to, types=types, full=full)
        run = open_run(store, vendor_id, parameters, settings.ledger_incremental_overlap_seconds,
                       settings.ledger_stale_after_seconds)
    else:
        found = store.runs.get(sync_id, vendor_id)
        if found is None:
            raise LookupError(f"no sync {sync_id} for vendor {vendor_id}")
        if not found.active:
            if found.flow_run_id and found.flow_run_id == _flow_run_id():
                return summary_view(found)  # this very flow run was already settled (cancelled before it started)
            found = reopen_for_resume(store, sync_id, vendor_id)
        run = found
    context = SyncContext(sync_id=run.sync_id, vendor_id=vendor_id, attempt=run.attempts,
                          parameters=run.sync_parameters, changed_since=run.since,
                          base_currency=store.vendors.base_currency(vendor_id, settings.ledger_base_currency))
    heartbeat = Heartbeat(store, context.guard, every_seconds=max(1.0, settings.ledger_stale_after_seconds / 4))
    with vendor_slot(vendor_id, enabled=settings.ledger_vendor_concurrency_limit), heartbeat:
        try:
            store.runs.update(context.guard, {field("state"): RunState.RUNNING, field("flow_run_id"): _flow_run_id(),
                                              field("heartbeat_at"): utc_now()})
            logger.info("sync started vendor=%s sync=%s parameters=%s", vendor_id, context.sync_id,
                        context.parameters.as_document())
            check_existing(context)
            for kind in kinds_selected(context.parameters):
                sync_documents(context, kind.step)
            complete(context)
        except SyncCancelled:
            summary = summary_view(_close(context, RunState.CANCELLED, None))
            logger.warning("sync cancelled vendor=%s sync=%s", vendor_id, context.sync_id)
            progress.publish(progress.COMPLETED, summary)
            return summary
        except Fenced as fenced:
            logger.error("sync %s of vendor %s stopped: %s", context.sync_id, vendor_id, fenced)
            raise
        except Exception as error:
            message = _explain(error)
            logger.error("sync failed vendor=%s sync=%s: %s", vendor_id, context.sync_id, message)
            # Tell the room first: when the database is what failed, the record may not be writable.
            progress.publish(progress.FAILED, {"syncId": context.sync_id, "vendorId": vendor_id, "error": message,
                                               "state": RunState.FAILED.value})
            try:
                _close(context, RunState.FAILED, message)
            except PyMongoError:
                logger.error("sync %s could not be marked failed; the stale-run detector will mark it crashed",
                             context.sync_id)
            raise
        summary = summary_view(_close(context, RunState.COMPLETED, None))
    logger.info("sync completed vendor=%s sync=%s stats=%s", vendor_id, context.sync_id, summary["stats"]["total"])
    progress.publish(progress.COMPLETED, summary)
    return summary


def _close(context: SyncContext, state: RunState, error: str | None) -> SyncRun:
    """Close this attempt's run; `Fenced` if it is no longer current (settled or resumed elsewhere)."""
    store = get_store()
    run = store.runs.get(context.sync_id)
    closed = store.runs.close(run.closed(state, error, utc_now()), guard=context.guard) if run else None
    if closed is None:
        raise Fenced(f"sync {context.sync_id} attempt {context.attempt} was settled elsewhere before it could "
                     f"be closed {state}")
    return closed


def _start_step(context: SyncContext, step: str, unless_completed: bool = True) -> SyncRun | None:
    """Mark a step running and tell the room, in one command; the run record as it now is.
    None when the step had completed before (a resumed run carries on after it)."""
    now = utc_now()
    shown = progress.progress_at(step, 0, 0, f"{step_label(step)}…")
    run = get_store().runs.update(
        context.guard, {field("steps", step, "state"): StepState.RUNNING, field("steps", step, "started_at"): now,
                        field("heartbeat_at"): now, **progress_changes(shown)},
        raise_at_least={field("progress", "percent"): shown.percent},
        unless_step_completed=step if unless_completed else None)
    if run is None:
        return None
    if run.cancel_requested:
        raise SyncCancelled()
    resumed_at = shown.model_copy(update={"percent": run.progress.percent})  # a resumed run's bar never goes back
    progress.publish(progress.PROGRESS, progress.progress_event(context.sync_id, context.vendor_id, RunState.RUNNING,
                                                                resumed_at, run.sync_stats.total))
    return run


def _finish_step(context: SyncContext, step: str, at_start: SyncRun, extra: dict[str, Any], message: str,
                 stats: SyncStats | None = None, processed: int = 0) -> None:
    """Mark a step completed and tell the room, in one command. `at_start` is the run record
    `_start_step` returned; `stats` what the step leaves the run's statistics at, if it changed them."""
    now = utc_now()
    started = at_start.step(step).started_at or now
    totals = (stats or at_start.sync_stats).total
    shown = progress.progress_at(step, processed, processed, message)
    run = get_store().runs.update(context.guard, {
        field("steps", step, "state"): StepState.COMPLETED, field("steps", step, "ended_at"): now,
        field("steps", step, "duration_ms"): int((now - started).total_seconds() * 1000), field("heartbeat_at"): now,
        **progress_changes(shown), **extra}, raise_at_least={field("progress", "percent"): shown.percent})
    percent = run.progress.percent if run is not None else shown.percent
    progress.publish(progress.PROGRESS, progress.progress_event(
        context.sync_id, context.vendor_id, RunState.RUNNING, shown.model_copy(update={"percent": percent}), totals))


def _verification_document(verification: Any) -> dict[str, Any]:
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
    if isinstance(error, LedgerInconsistent | EntryIdCollision):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _flow_run_id() -> str | None:
    try:
        return str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - outside a flow run there is none
        return None


logging.getLogger("ledger_sync").addHandler(logging.NullHandler())
progress.add_listener(progress.prefect_event_listener)
