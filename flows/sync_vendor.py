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
import os
import signal
from datetime import datetime
from decimal import Decimal
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from pydantic import BaseModel, ConfigDict
from pymongo.errors import ConnectionFailure, ExecutionTimeout, NetworkTimeout, OperationFailure, PyMongoError

from flows import progress
from flows.database import get_store
from flows.runs import open_run, reopen_for_resume, summary_view
from flows.settings import get_settings
from ledger.batch import plan_batch, plan_removed_sources
from ledger.sources import SYNC_TYPES, SourceType
from ledger.store import SourceQuery, as_utc, utc_now
from ledger.sync_run import STEP_LABELS, SyncParameters, SyncStats, TypeStats
from ledger.accounts import ACCOUNTS_PAYABLE, ACCOUNTS_RECEIVABLE
from ledger.entries import ZERO
from ledger.sources import Rejection
from ledger.validation import read_source
from ledger.verification import open_amount, verify

RETRY_DELAYS = [1, 3, 8, 15]


class SyncCancelled(Exception):
    pass


class LedgerInconsistent(Exception):
    """The books fail verification: never retried, the run fails with the reason."""


def is_transient(task, task_run, state) -> bool:
    """Retry when the database went away or timed out, not on anything else."""
    try:
        state.result(raise_on_failure=True)
    except (ConnectionFailure, NetworkTimeout, ExecutionTimeout) as error:
        return not isinstance(error, OperationFailure) or error.code in (50, 262)
    except PyMongoError as error:
        return getattr(error, "has_error_label", lambda _: False)("RetryableWriteError")
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


step_task = task(retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS, retry_jitter_factor=0.2,
                 retry_condition_fn=is_transient, cache_policy=NO_CACHE)


@step_task(name="check_existing")
def check_existing(context: SyncContext) -> dict:
    """Verify the books as they are before writing anything: every entry balances, the trial balance nets to zero."""
    store = get_store()
    _start_step(context, "check_existing")
    summary = store.ledger_summary(context.vendor_id)
    balances = store.balances(context.vendor_id)
    net = sum(balances.debits.values()) - sum(balances.credits.values())
    if summary["unbalanced"] or net:
        raise LedgerInconsistent(
            f"the existing ledger does not balance ({summary['unbalanced']} unbalanced entries, net {net}); "
            "nothing was written — investigate before syncing")
    existing = {**summary, "accounts": len(balances.debits)}
    _finish_step(context, "check_existing", {"existing": existing},
                 message=f"{summary['entries']} entries already posted, books balanced")
    return existing


def _sync_documents(context: SyncContext, sync_type: str) -> dict:
    """Read the vendor's documents of one type in batches; post, reverse, reject; checkpoint each batch."""
    logger = get_run_logger()
    settings = get_settings()
    store = get_store()
    source_type = SYNC_TYPES[sync_type]
    run = store.run(context.sync_id)
    step = run["steps"][sync_type]
    if step["state"] == "completed":
        return run["stats"][sync_type]
    stats = SyncStats.from_document(run["stats"])
    type_stats = getattr(stats, sync_type)
    query = SourceQuery(vendor_id=context.vendor_id, source_type=source_type, date_from=context.parameters.start,
                        date_until=context.parameters.end_exclusive, changed_since=context.changed_since.get(sync_type))
    total = store.count_sources(query)
    processed = step.get("processed", 0) if step.get("lastId") is not None else 0
    _start_step(context, sync_type, {f"steps.{sync_type}.total": total})
    known_accounts = store.known_accounts(context.vendor_id)
    reporter = progress.ProgressReporter(context.sync_id, context.vendor_id)
    crash_after = settings.ledger_crash_after_documents
    resume_from = step.get("lastId")
    with reporter:
        reporter.update(reporter.snapshot(sync_type, processed, total, _counts(stats, type_stats),
                                          f"{STEP_LABELS[sync_type]}: {processed} of {total}"), force=True)
        for documents in store.source_batches(SourceQuery(**{**query.__dict__, "after_id": resume_from})):
            now = utc_now()
            ids = [document["_id"] for document in documents]
            existing = store.entries_for_sources(context.vendor_id, source_type, ids)
            batch = plan_batch(source_type, documents, existing, context.parameters, context.base_currency, now)
            new_accounts = {line.account for entry in batch.entries for line in entry.lines} - known_accounts
            if new_accounts:
                store.open_accounts(context.vendor_id, new_accounts)
                known_accounts |= new_accounts
            written = store.insert_entries(batch.entries, context.sync_id, now)
            store.record_rejections(context.sync_id, batch.rejections, now)
            for rejection in batch.rejections:
                logger.warning("rejected vendor=%s sync=%s %s=%s field=%s: %s", context.vendor_id, context.sync_id,
                               source_type.value, rejection.id, rejection.field, rejection.reason)
            processed += len(documents)
            if crash_after is not None and processed >= crash_after:
                os.kill(os.getpid(), signal.SIGKILL)  # test hook: die after writing, before the checkpoint
            type_stats = type_stats + batch.stats(written.inserted_ids)
            stats = stats.with_type(sync_type, type_stats)
            snapshot = reporter.snapshot(sync_type, processed, total, _counts(stats, type_stats),
                                         f"{STEP_LABELS[sync_type]}: {processed} of {total}")
            run = store.update_run(context.sync_id, {
                f"steps.{sync_type}.lastId": ids[-1], f"steps.{sync_type}.processed": processed,
                "stats": stats.as_document(), "errorsCount": stats.total.errors,
                "progress": _public(snapshot), "heartbeatAt": now,
            })
            if run.get("cancelRequested"):
                raise SyncCancelled()
            reporter.update(snapshot)
        if context.parameters.full:
            reversed_count = _reverse_hard_deletes(context, sync_type)
            type_stats = type_stats + TypeStats(reversed=reversed_count)
            stats = stats.with_type(sync_type, type_stats)
    _finish_step(context, sync_type, {"stats": stats.as_document(), "errorsCount": stats.total.errors},
                 message=f"{STEP_LABELS[sync_type]}: {type_stats.synced} posted, {type_stats.reversed} reversed, "
                         f"{type_stats.skipped} unchanged, {type_stats.errors} rejected")
    return type_stats.model_dump()


def _reverse_hard_deletes(context: SyncContext, sync_type: str) -> int:
    """Full sync: documents the ledger knows that are gone from the source get reversals."""
    store = get_store()
    source_type = SYNC_TYPES[sync_type]
    reversed_count = 0
    for ids in store.posted_source_id_batches(source_type, context.vendor_id, context.parameters.start,
                                              context.parameters.end_exclusive):
        missing = store.missing_source_ids(source_type, context.vendor_id, ids)
        if not missing:
            continue
        now = utc_now()
        reversals = plan_removed_sources(store.entries_for_sources(context.vendor_id, source_type, missing), now)
        reversed_count += store.insert_entries(reversals, context.sync_id, now).inserted_reversals
    return reversed_count


sales_invoices = step_task(name="sales_invoices")(lambda context: _sync_documents(context, "sales_invoices"))
purchase_invoices = step_task(name="purchase_invoices")(lambda context: _sync_documents(context, "purchase_invoices"))
expenses = step_task(name="expenses")(lambda context: _sync_documents(context, "expenses"))
DOCUMENT_STEPS = {"sales_invoices": sales_invoices, "purchase_invoices": purchase_invoices, "expenses": expenses}


@step_task(name="complete")
def complete(context: SyncContext) -> dict:
    """Final verification and statistics: the trial balance nets to zero and the
    receivable/payable accounts equal the open balances of the documents behind them."""
    store = get_store()
    _start_step(context, "complete")
    vendor = context.vendor_id
    verification = verify(store.balances(vendor), store.ledger_summary(vendor)["unbalanced"],
                          *_open_document_balances(store, context))
    report = _verification_document(verification)
    if not verification.trial_balance.is_balanced or verification.unbalanced_entries:
        store.update_run(context.sync_id, {"verification": report})
        raise LedgerInconsistent(f"the trial balance does not net to zero after the sync "
                                 f"(debits {verification.trial_balance.total_debit}, "
                                 f"credits {verification.trial_balance.total_credit})")
    _finish_step(context, "complete", {"verification": report}, message="Books balanced")
    return report


def _open_document_balances(store, context: SyncContext) -> tuple[Decimal, Decimal]:
    """Open receivables and payables per the source documents, read in batches.

    A rejected document counts as the ledger holds it (its last valid posting
    stays until it is fixed), so only real disagreements show.
    """
    totals = {ACCOUNTS_RECEIVABLE: ZERO, ACCOUNTS_PAYABLE: ZERO}
    for source_type, account in ((SourceType.SALES_INVOICE, ACCOUNTS_RECEIVABLE),
                                 (SourceType.PURCHASE_INVOICE, ACCOUNTS_PAYABLE), (SourceType.EXPENSE, ACCOUNTS_PAYABLE)):
        sign = 1 if account == ACCOUNTS_RECEIVABLE else -1
        for documents in store.source_batches(SourceQuery(vendor_id=context.vendor_id, source_type=source_type)):
            rejected = []
            for raw in documents:
                document = read_source(source_type, raw, context.base_currency)
                if isinstance(document, Rejection):
                    rejected.append(document.id)
                else:
                    totals[account] += open_amount(document)
            if rejected:
                totals[account] += sign * store.account_balance_of_sources(context.vendor_id, source_type, rejected,
                                                                           account)
    return totals[ACCOUNTS_RECEIVABLE], totals[ACCOUNTS_PAYABLE]


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
            run = reopen_for_resume(store, sync_id, vendor_id)
        parameters = SyncParameters(**run["parameters"])
    sync_id = run["syncId"]
    context = SyncContext(sync_id=sync_id, vendor_id=vendor_id, parameters=parameters,
                          changed_since={k: as_utc(v) for k, v in run["since"].items()},
                          base_currency=store.base_currency(vendor_id, settings.ledger_base_currency))
    store.update_run(sync_id, {"state": "running", "flowRunId": _flow_run_id(), "heartbeatAt": utc_now()})
    logger.info("sync started vendor=%s sync=%s parameters=%s", vendor_id, sync_id, parameters.as_document())
    try:
        check_existing(context)
        for sync_type, step in DOCUMENT_STEPS.items():
            if sync_type in parameters.types:
                step(context)
        complete(context)
    except SyncCancelled:
        finished = _finish_run(context, "cancelled", None)
        logger.warning("sync cancelled vendor=%s sync=%s", vendor_id, sync_id)
        progress.publish(progress.COMPLETED, summary_view(finished))
        return summary_view(finished)
    except Exception as error:
        message = _explain(error)
        finished = _finish_run(context, "failed", message)
        logger.error("sync failed vendor=%s sync=%s: %s", vendor_id, sync_id, message)
        progress.publish(progress.FAILED, {"syncId": sync_id, "vendorId": vendor_id, "error": message,
                                           "state": finished["state"]})
        raise
    finished = _finish_run(context, "completed", None)
    summary = summary_view(finished)
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


def _start_step(context: SyncContext, step: str, extra: dict | None = None) -> None:
    store = get_store()
    snapshot = progress.ProgressReporter(context.sync_id, context.vendor_id).snapshot(
        step, 0, 0, {}, f"{STEP_LABELS[step]}…")
    run = store.update_run(context.sync_id, {f"steps.{step}.state": "running", f"steps.{step}.startedAt": utc_now(),
                                             "heartbeatAt": utc_now(), **(extra or {})})
    if run.get("cancelRequested"):
        raise SyncCancelled()
    stats = run["stats"]["total"]
    snapshot["stats"] = {k: stats.get(k, 0) for k in ("synced", "skipped", "reversed", "errors")}
    snapshot["percent"] = max(snapshot["percent"], (run.get("progress") or {}).get("percent", 0))
    store.update_run(context.sync_id, {"progress": _public(snapshot)})
    progress.publish(progress.PROGRESS, snapshot)


def _finish_step(context: SyncContext, step: str, extra: dict, message: str) -> None:
    store = get_store()
    now = utc_now()
    run = store.run(context.sync_id)
    started = as_utc(run["steps"][step].get("startedAt")) or now
    reporter = progress.ProgressReporter(context.sync_id, context.vendor_id)
    stats = SyncStats.from_document(extra.get("stats") or run["stats"]).total
    processed = run["steps"][step].get("total", 0) or run["steps"][step].get("processed", 0)
    snapshot = reporter.snapshot(step, processed, processed, stats.model_dump(), message)
    snapshot["percent"] = max(snapshot["percent"], (run.get("progress") or {}).get("percent", 0))
    store.update_run(context.sync_id, {
        f"steps.{step}.state": "completed", f"steps.{step}.endedAt": now,
        f"steps.{step}.durationMs": int((now - started).total_seconds() * 1000), "progress": _public(snapshot),
        "heartbeatAt": now, **extra})
    progress.publish(progress.PROGRESS, snapshot)


def _counts(stats: SyncStats, _type_stats: TypeStats) -> dict:
    return stats.total.model_dump()


def _public(snapshot: dict) -> dict:
    return {k: snapshot[k] for k in ("step", "stepIndex", "stepsTotal", "percent", "processed", "total", "message")}


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
    if isinstance(error, ConnectionFailure | NetworkTimeout | ExecutionTimeout):
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
