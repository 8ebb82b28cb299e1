"""The per-vendor sync flow: the business process, step by step.

check existing books → one step per kind of document (sales invoices, purchase
invoices, expenses, …) → complete. Each step is a Prefect task that retries on
transient database errors only; validation problems are data, recorded and
counted, never retried. Every batch ends with a checkpoint in the run record, so
a retried task or a resumed run continues where it stopped, and deterministic
entry ids make any overlap a no-op.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, cast

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.context import get_run_context
from prefect.states import Cancelled, Completed, State
from pymongo.errors import ConnectionFailure, CursorNotFound, ExecutionTimeout, PyMongoError

from flows import artifacts, progress
from flows.concurrency import vendor_slot
from flows.context import SyncCancelled, SyncContext
from flows.database import get_store
from flows.deployments import FLOW_NAME, flow_run_name, run_tags
from flows.document_step import DocumentStep
from flows.periods import moved_closes
from flows.runs import Heartbeat, open_run, reopen_for_resume, summary_view
from flows.settings import get_settings
from flows.verify import describe as describe_chain
from flows.verify import head_problem, link_head, prepare_ledger, verify_chain
from ledger.balances import daily_difference, line_count_difference, total
from ledger.chain import ChainReport, Head
from ledger.clock import utc_now
from ledger.entries import ZERO
from ledger.kinds import Side, by_step, kinds
from ledger.store import EntryIdCollision, Fenced, Store, Written
from ledger.store.batches import ChainMoved
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
    # refused, reset, no server, operation timed out; a read cursor the server lost when it restarted
    except (ConnectionFailure, ExecutionTimeout, CursorNotFound):
        return True
    except PyMongoError as error:
        return bool(error.timeout or error.has_error_label("RetryableWriteError")
                    or error.has_error_label("TransientTransactionError"))
    except Exception:  # noqa: BLE001 - everything else is not transient
        return False
    return False


STEP_RETRIES: dict[str, Any] = {"retries": len(RETRY_DELAYS), "retry_delay_seconds": RETRY_DELAYS,
                                "retry_jitter_factor": 0.2, "retry_condition_fn": is_transient,
                                "cache_policy": NO_CACHE}


@task(name=CHECK_EXISTING, **STEP_RETRIES)
def check_existing(context: SyncContext) -> dict[str, Any]:
    """Verify the books as they are before this attempt writes anything.

    The end of the hash chain is checked (two index reads), then the part of the chain the
    last seal did not cover, and a rolling window of the rest, so every sync costs the same
    whatever the size of the ledger and, over syncs, the whole chain is re-verified; a full
    sync walks all of it and re-adds every entry on the server. The books this attempt
    starts from are the seal plus what was written since, and the monthly balances must add
    up to them. Any problem refuses to write, telling the operator to run `verify`.
    """
    store = get_store()
    vendor = context.vendor_id
    run = _start_step(context, CHECK_EXISTING)
    if run is None:  # a retried task: this attempt checked the books already
        again = store.runs.get(context.sync_id)
        return (again.ledger_at_start if again else None) or {}
    head = prepare_ledger(store, vendor)
    problem = head_problem(store, vendor, head)
    if problem:
        _refuse(vendor, problem)
    seal = store.runs.latest_seal(vendor)
    sealed = seal.ledger if seal is not None and seal.ledger and "seq" in seal.ledger else None
    if context.parameters.full or sealed is None or sealed["seq"] > head.seq:
        report = verify_chain(store, vendor, through=head.seq)
        _refuse_unless_ok(vendor, report)
        if store.entries.count(vendor) != head.seq:
            _refuse(vendor, "the ledger holds entries that are not in its chain")
        daily, lines = store.entries.daily_movements(vendor)
        balances, basis, verified = total(daily.values()), "recomputed", head.seq
        held_daily, held_lines = store.balances.daily(vendor)
        mismatch = describe_differences(store.books.current(vendor), balances) or \
            daily_difference(held_daily, daily) or line_count_difference(held_lines, lines)
        if mismatch:
            store.balances.replace(vendor, daily, lines)
            get_run_logger().warning("vendor=%s sync=%s: the monthly balances did not add up to the entries (%s); "
                                     "rebuilt", vendor, context.sync_id, mismatch)
    else:
        since_seal = Head(seq=sealed["seq"], hash=sealed["hash"])
        _refuse_unless_ok(vendor, verify_chain(store, vendor, after=since_seal, through=head.seq))
        settings = get_settings()
        window = settings.ledger_verify_window_micro_batch if context.parameters.documents else \
            settings.ledger_verify_window
        verified = _verify_window(store, vendor, int(sealed.get("verifiedThrough", 0)), head, window)
        balances = balances_from_document(sealed["balances"]).plus(store.entries.written_after(vendor,
                                                                                                sealed["seq"]).balances)
        basis = f"sealed by {sealed['syncId']}"
        mismatch = describe_differences(store.books.current(vendor), balances)
        if mismatch:
            _refuse(vendor, f"the monthly balances do not add up to the books ({mismatch})")
    net = sum(balances.debits.values(), ZERO) - sum(balances.credits.values(), ZERO)
    if net:
        _refuse(vendor, f"the existing ledger does not balance (net {net})")
    at_start = {"seq": head.seq, "hash": head.hash, "entries": head.seq, "balances": balances_to_document(balances),
                "basis": basis, "verifiedThrough": verified}
    # What this attempt writes is counted from here (what earlier attempts wrote is in the books above).
    _finish_step(context, CHECK_EXISTING, run, {
        field("ledger_at_start"): at_start, field("ledger_delta"): {}, field("entries_written"): 0,
        field("open_change"): {}, field("open_amounts"): {}}, message=f"{head.seq:,} entries already posted, "
                                                                     "books balanced and their chain verified")
    return at_start


def _verify_window(store: Store, vendor_id: str, verified_through: int, head: Head, window: int) -> int:
    """Verify the next stretch of the chain after `verified_through` (from its start once the end
    was reached); where the next sync goes on from."""
    start = 0 if verified_through >= head.seq else verified_through
    after = link_head(store, vendor_id, start)
    if after is None:
        _refuse(vendor_id, f"place {start} of the chain is missing")
    through = min(head.seq, start + window)
    _refuse_unless_ok(vendor_id, verify_chain(store, vendor_id, after=after, through=through))
    return through


def _refuse_unless_ok(vendor_id: str, report: ChainReport) -> None:
    if not report.ok:
        _refuse(vendor_id, describe_chain(report))


def _refuse(vendor_id: str, problem: str) -> None:
    raise LedgerInconsistent(f"the books of {vendor_id} do not verify: {problem}. Nothing was written; run "
                             f"`ledger-sync verify --vendor {vendor_id}` and investigate before syncing")


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
                 message=f"{kind.label}: {stats.scanned:,} read, {stats.synced:,} posted, {stats.reversed:,} reversed, "
                         f"{stats.skipped:,} unchanged, {stats.errors:,} rejected")
    return stats.model_dump()


@task(name=COMPLETE, **STEP_RETRIES)
def complete(context: SyncContext) -> dict[str, Any]:
    """Final verification and statistics, on what the database holds.

    What the database holds of this attempt is read back in one read on an index (a first
    attempt's: every entry carrying the sync's id; a resumed one's: the entries after its start
    in the chain): it must be what the attempt meant to write, in exactly the places the chain
    head moved over.
    With the books the attempt started from, the trial balance must net to zero and the
    monthly balances add up to it. The receivable and payable accounts must equal the open
    balances of the documents behind them: a first attempt that read every document added
    them up on the way; any other carries the books' figures before it plus the change of
    the documents it read. The trial balance as of every closed date must not have moved.
    Any difference fails the sync, naming the account and the amount. The result is sealed.
    """
    store = get_store()
    vendor = context.vendor_id
    run = _start_step(context, COMPLETE, unless_completed=False)
    assert run is not None and run.ledger_at_start is not None
    start = run.ledger_at_start
    meant = balances_from_document(run.ledger_delta)
    head = store.vendors.head(vendor) or Head()
    if run.attempts == 1:
        written = store.entries.written_by(vendor, context.sync_id)
        _fail_unless_same(written, meant, run.entries_written, "entries carrying this sync's id")
        # They hold exactly the places the head moved over: the chain's unique index leaves no room
        # there for another entry, so one read covers both what carries the id and what is in the chain.
        moved_over = (start["seq"] + 1, head.seq) if written.entries else None
        if written.unplaced or written.places != moved_over:
            held = f"places {written.places[0]} to {written.places[1]}" if written.places else "no places"
            raise LedgerInconsistent(
                f"the entries carrying this sync's id hold {held} of the chain"
                f"{f' ({written.unplaced} of them none)' if written.unplaced else ''}, but it moved the chain "
                f"from place {start['seq']} to {head.seq}. Something else changed ledger_entries during the sync: "
                "run `ledger-sync verify` once it is explained")
    else:  # earlier attempts' entries carry the same id: this attempt's are those after its start
        written = store.entries.written_after(vendor, start["seq"], context.sync_id)
        _fail_unless_same(written, meant, run.entries_written, "entries placed in the chain by this sync")
        if written.foreign:
            raise LedgerInconsistent(f"{written.foreign} of the entries placed in the chain by this sync carry "
                                     "another sync's id. Something else changed ledger_entries during the sync: "
                                     "run `ledger-sync verify` once it is explained")
    if head.seq != start["seq"] + written.entries:
        raise LedgerInconsistent(f"the chain head is at {head.seq}, but this sync started at {start['seq']} and "
                                 f"wrote {written.entries} entries")
    balances = balances_from_document(start["balances"]).plus(written.balances)
    mismatch = describe_differences(store.books.current(vendor), balances)
    if mismatch:
        raise LedgerInconsistent(f"the monthly balances do not add up to the books after the sync: {mismatch}")
    receivable, payable = _open_documents(context, run, balances_from_document(start["balances"]))
    verification = verify(balances, written.unbalanced, receivable, payable)
    report = _verification_document(verification)
    problems = ([describe_failure(verification)] if not verification.ok else []) + moved_closes(store, vendor)
    if problems:
        store.runs.update(context.guard, {field("verification"): {**report, "ok": False}})
        raise LedgerInconsistent("the books do not verify after the sync: " + "; ".join(problems))
    seal = {"syncId": context.sync_id, "runNumber": run.run_number, "seq": head.seq, "hash": head.hash,
            "entries": head.seq, "balances": balances_to_document(balances),
            "verifiedThrough": start.get("verifiedThrough", 0)}
    _finish_step(context, COMPLETE, run, {field("verification"): report, field("ledger"): seal,
                                          field("documents_open"): {"receivable": str(receivable),
                                                                    "payable": str(payable)}},
                 message="Books balanced; receivables and payables agree with the documents")
    return report


def _fail_unless_same(written: Written, meant: Balances, entries: int, what: str) -> None:
    mismatch = describe_differences(written.balances, meant)
    if mismatch or written.entries != entries or written.unbalanced:
        raise LedgerInconsistent(
            f"the ledger does not hold what this sync wrote: {written.entries} {what}, it wrote {entries}"
            f"{'; ' + mismatch if mismatch else ''}{f'; {written.unbalanced} unbalanced' if written.unbalanced else ''}"
            ". Something else changed ledger_entries during the sync: run `ledger-sync verify` once it is explained")


def _open_documents(context: SyncContext, run: SyncRun, before: Balances) -> tuple[Decimal, Decimal]:
    """Open receivables and payables per the source documents (see `complete`)."""
    absolute = context.reads_everything and run.attempts == 1
    totals = {Side.RECEIVABLE: ZERO, Side.PAYABLE: ZERO}
    for kind in kinds():
        totals[kind.side] += Decimal((run.open_amounts if absolute else run.open_change).get(kind.step, "0"))
    if not absolute:
        for side in totals:
            totals[side] += side.open_balance(before.balance(side.control_account))
    return totals[Side.RECEIVABLE], totals[Side.PAYABLE]


@flow(name=FLOW_NAME, log_prints=False)
def sync_vendor_ledger(vendor_id: str, date_from: str | None = None, date_to: str | None = None,
                       types: list[str] | None = None, full: bool = False, sync_id: str | None = None,
                       documents: dict[str, list[str]] | None = None,
                       prefect_slot: bool = True) -> dict[str, Any] | State:
    """Post one vendor's invoices, payments and expenses into its ledger.

    Without `sync_id` a new run is opened (refused if the vendor has one
    running); with one, that run is picked up: the queued run the API opened,
    or an interrupted run being resumed from its checkpoints. `documents` (id keys per step)
    limits it to those documents: the continuous sync's micro-batches. `prefect_slot=False` leaves out
    the vendor's Prefect concurrency slot (the run record's unique index still allows one sync per
    vendor): the nightly's in-process vendors, where taking it from many threads at once tripled their time.

    Returns the run's summary, inside a state where Prefect must show more than Completed: Cancelled
    for a cancelled sync, Completed "Skipped" for a Retry of a flow run whose sync has ended since. In
    this process, `summary_of(sync_vendor_ledger(..., return_state=True))` reads it either way.
    """
    logger = get_run_logger()
    settings = get_settings()
    store = get_store()
    if sync_id is None:
        parameters = SyncParameters(date_from=date_from, date_to=date_to, full=full,
                                    types=list(documents) if documents else types,
                                    documents=None if documents is None else {step: tuple(keys) for step, keys
                                                                              in documents.items()})
        run = open_run(store, vendor_id, parameters, settings.ledger_incremental_overlap_seconds,
                       settings.ledger_stale_after_seconds)
    else:
        found = store.runs.get(sync_id, vendor_id)
        if found is None:
            raise LookupError(f"no sync {sync_id} for vendor {vendor_id}")
        if not found.active:
            if found.flow_run_id and found.flow_run_id == _flow_run_id():
                return summary_view(found)  # this very flow run was already settled (cancelled before it started)
            if not found.resumable:  # Retry pressed in the Prefect UI on a flow run whose sync was resumed since
                refused = (f"sync {sync_id} of vendor {vendor_id} is {found.state} (its last attempt ran in flow run "
                           f"{found.flow_run_id}): nothing to retry; only a failed, crashed or cancelled sync is "
                           "resumed")
                logger.warning(refused)
                return Completed(name="Skipped", message=refused, data=summary_view(found))
            found = reopen_for_resume(store, sync_id, vendor_id)
        run = found
    owner = uuid.uuid4().hex
    claimed = store.runs.claim(run.sync_id, run.attempts, owner, _flow_run_id(), utc_now())
    if claimed is None:  # another process took this attempt first (a start delivered twice): leave it to it
        logger.warning("sync %s attempt %d of vendor %s is run by another process; this one does nothing",
                       run.sync_id, run.attempts, vendor_id)
        current = store.runs.get(run.sync_id)
        return summary_view(current or run)
    context = SyncContext(sync_id=run.sync_id, vendor_id=vendor_id, attempt=run.attempts, owner=owner,
                          parameters=run.sync_parameters, changed_since=run.since,
                          base_currency=store.vendors.base_currency(vendor_id, settings.ledger_base_currency),
                          closed_through=store.vendors.closed_through(vendor_id))
    heartbeat = Heartbeat(store, context.guard, every_seconds=max(1.0, settings.ledger_stale_after_seconds / 4))
    # A micro-batch of the continuous sync is over in moments: no progress bar to follow.
    shown = contextlib.nullcontext() if context.parameters.documents else \
        artifacts.ProgressArtifact(context.sync_id, vendor_id)
    with vendor_slot(vendor_id, enabled=prefect_slot and settings.ledger_vendor_concurrency_limit), heartbeat, shown, \
            _flow_run_named(run):
        try:
            store.runs.update(context.guard, {field("state"): RunState.RUNNING, field("heartbeat_at"): utc_now()})
            logger.info("sync started vendor=%s sync=%s parameters=%s", vendor_id, context.sync_id,
                        context.parameters.as_document())
            check_existing(context)
            for kind in kinds_selected(context.parameters):
                sync_documents(context, kind.step)
            complete(context)
        except SyncCancelled:
            cancelled = _close(context, RunState.CANCELLED, None)
            artifacts.publish_report(cancelled)
            summary = summary_view(cancelled)
            logger.warning("sync cancelled vendor=%s sync=%s", vendor_id, context.sync_id)
            progress.publish(progress.COMPLETED, summary)
            # The flow run ends Cancelled in Prefect as the sync did (`summary_of` hands back the summary).
            return Cancelled(message=f"Sync {context.sync_id} was cancelled by the vendor", data=summary)
        except Fenced as fenced:
            logger.error("sync %s of vendor %s stopped: %s", context.sync_id, vendor_id, fenced)
            raise
        except Exception as error:
            message = _explain(error)
            logger.error("sync failed vendor=%s sync=%s: %s", vendor_id, context.sync_id, message)
            failed = None
            try:
                failed = _close(context, RunState.FAILED, message)
            except PyMongoError:
                logger.error("sync %s could not be marked failed; the stale-run detector will mark it crashed",
                             context.sync_id)
            # The room hears the end once the record says it (a status read on the event agrees), and
            # hears it even when the database is what failed.
            progress.publish(progress.FAILED, {"syncId": context.sync_id, "vendorId": vendor_id, "error": message,
                                               "state": RunState.FAILED.value})
            if failed is not None:
                artifacts.publish_report(failed)
            raise
        completed = _close(context, RunState.COMPLETED, None)
        artifacts.publish_report(completed)
        summary = summary_view(completed)
    logger.info("sync completed vendor=%s sync=%s stats=%s", vendor_id, context.sync_id, summary["stats"]["total"])
    progress.publish(progress.COMPLETED, summary)
    return summary


def summary_of(state: State) -> dict[str, Any]:
    """The summary of a sync run in this process (`sync_vendor_ledger(..., return_state=True)`), a cancelled
    one's too; a failed one raises its error."""
    return cast(dict[str, Any], state.result(raise_on_failure=not state.is_cancelled()))


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
    # Every step's summary at INFO, in the Prefect UI's log of the run as in the worker's.
    get_run_logger().info("%s vendor=%s sync=%s: %s (%.1f s)", step, context.vendor_id, context.sync_id, message,
                          (now - started).total_seconds())
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
    if isinstance(error, LedgerInconsistent | EntryIdCollision | ChainMoved):
        return str(error)
    return f"{type(error).__name__}: {error}"


@contextlib.contextmanager
def _flow_run_named(run: SyncRun) -> Iterator[None]:
    """Name and tag this flow run as the API and the schedules do (`flows.deployments`): a run started
    in-process (the CLI, the watcher) only learns its sync id here, so the Prefect UI shows every sync alike.
    On a thread of its own while the sync runs: a round trip to Prefect's API is no reason to hold it up."""
    try:
        flow_run = get_run_context().flow_run  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - outside a flow run there is nothing to name
        flow_run = None
    name, tags = flow_run_name(run.sync_id, run.attempts), run_tags(run.vendor_id, run.sync_id, run.attempts)
    if flow_run is None or (flow_run.name == name and set(tags) <= set(flow_run.tags)):
        yield  # not a flow run, or one started by a deployment run, already named
        return
    logger = get_run_logger()

    def rename() -> None:
        try:
            with get_client(sync_client=True) as client:
                client.update_flow_run(flow_run.id, name=name, tags=sorted({*flow_run.tags, *tags}))
        except Exception as error:  # noqa: BLE001 - a name is no reason to stop a sync
            logger.warning("sync %s: the flow run could not be named: %s", run.sync_id, error)

    naming = threading.Thread(target=rename, name=f"name-{run.sync_id}", daemon=True)
    naming.start()
    try:
        yield
    finally:
        naming.join(timeout=30)


def _flow_run_id() -> str | None:
    try:
        return str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - outside a flow run there is none
        return None


logging.getLogger("ledger_sync").addHandler(logging.NullHandler())
progress.add_listener(progress.prefect_event_listener)
