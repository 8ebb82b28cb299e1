"""Idempotency (SPEC §3, §5): unchanged data posts nothing; concurrent syncs, retried
tasks and re-written batches never post an entry twice, and the database enforces it."""

from __future__ import annotations

import copy
import threading

import pytest
from pymongo.errors import AutoReconnect, DuplicateKeyError

from flows.settings import get_settings
from ledger.store import SyncAlreadyRunning
from ledger.store.entries import EntryStore
from ledger.store.runs import RunRepository
from tests.factories import (
    D,
    after_each_batch,
    assert_books_balance,
    entries,
    expense,
    insert,
    net,
    payment,
    purchase,
    sales,
    stats,
)


def load_books(db, vendor="v1", updated=True):
    """Three sales invoices (one void), a purchase invoice and two expenses: 8 entries to post."""
    kwargs = {"vendor": vendor} if updated else {"vendor": vendor, "updatedAt": None}
    v = vendor
    insert(db, "salesinvoices",
           sales(f"{v}-S1", subtotal="1000.00", taxTotal="180.00", status="partially_paid",
                 payments=[payment(f"{v}-P1", "500.00", method="cash")], **kwargs),
           sales(f"{v}-S2", subtotal="250.00", status="paid", payments=[payment(f"{v}-P2", "250.00")], **kwargs),
           sales(f"{v}-S3", subtotal="99.00", status="void", **kwargs))
    insert(db, "purchaseinvoices", purchase(f"{v}-B1", subtotal="400.00", taxTotal="72.00", **kwargs))
    insert(db, "expenses", expense(f"{v}-E1", amount="300.00", taxAmount="54.00", paymentMethod="cash", **kwargs),
           expense(f"{v}-E2", amount="20.00", paymentStatus="unpaid", paymentMethod=None, **kwargs))


EXPECTED_ENTRIES = 7  # S1, P1, S2, P2, B1, E1, E2
# receivable 1180 − 500 + 250 − 250; cash 500 − 354; payable 472 + 20
EXPECTED_NET = {"accounts_receivable": D("680.00"), "cash": D("146.00"), "bank": D("250.00"), "sales": D("-1250.00"),
                "output_tax": D("-180.00"), "purchases": D("400.00"), "input_tax": D("126.00"),
                "accounts_payable": D("-492.00"), "expenses:office-rent": D("320.00")}


def assert_no_duplicates(db, store, vendor="v1"):
    found = entries(db, vendor)
    assert len(found) == EXPECTED_ENTRIES
    keys = [(e["source"]["type"], e["source"]["id"], e["source"].get("paymentId")) for e in found]
    assert len(set(keys)) == EXPECTED_ENTRIES, "two entries for one posting unit"
    assert net(store, vendor) == EXPECTED_NET
    assert_books_balance(db, store, vendor)


@pytest.mark.parametrize("full", [False, True])
def test_resync_of_unchanged_data_posts_nothing_and_counts_every_document_skipped(db, store, sync, full):
    load_books(db, updated=False)  # no updatedAt: an incremental sync reads them all again
    first = sync("v1")
    assert stats(first) == {"scanned": 6, "synced": 7, "reversed": 0, "skipped": 1, "errors": 0}  # the void: nothing
    before = entries(db)
    second = sync("v1", full=full)
    assert stats(second) == {"scanned": 6, "synced": 0, "reversed": 0, "skipped": 6, "errors": 0}
    assert stats(second, "sales_invoices")["skipped"] == 3 and stats(second, "expenses")["skipped"] == 2
    assert entries(db) == before
    assert_no_duplicates(db, store)


def _run_at_once(*calls) -> list:
    """Start the calls on threads at the same moment; each outcome is a result or the exception raised."""
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def run(slot: int) -> None:
        barrier.wait()
        try:
            outcomes[slot] = calls[slot]()
        except BaseException as error:  # noqa: BLE001 - returned to the test
            outcomes[slot] = error

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


@pytest.mark.parametrize("claim_together", [False, True])
def test_two_syncs_of_one_vendor_started_at_once_never_post_twice(db, store, sync, monkeypatch, claim_together):
    load_books(db)
    if claim_together:  # both reach the database's one-active-run check at the same instant
        meet = threading.Barrier(2)
        original = RunRepository.create

        def create_run_together(self, run):
            meet.wait(timeout=60)
            return original(self, run)

        monkeypatch.setattr(RunRepository, "create", create_run_together)
    outcomes = _run_at_once(lambda: sync("v1", full=True), lambda: sync("v1", full=True))

    completed = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, SyncAlreadyRunning)]
    assert len(completed) + len(refused) == 2, outcomes
    assert completed and all(summary["state"] == "completed" for summary in completed)
    if claim_together:
        assert len(refused) == 1
    for refusal in refused:  # refused with the running one's id
        assert refusal.sync_id == completed[0]["syncId"]
    assert sum(stats(summary)["synced"] for summary in completed) == EXPECTED_ENTRIES
    assert_no_duplicates(db, store)
    assert store.runs.running("v1") is None
    assert db.ledger_sync_runs.count_documents({"vendorId": "v1"}) == len(completed)


def test_one_run_picked_up_twice_at_once_never_posts_twice(db, store, sync):
    """The API opens a queued run; a double-delivered start runs the flow for it twice at once."""
    from flows.runs import open_run
    from ledger.sync_run import SyncParameters

    load_books(db)
    run = open_run(store, "v1", SyncParameters(full=True), 0, 60)
    outcomes = _run_at_once(lambda: sync("v1", sync_id=run.sync_id), lambda: sync("v1", sync_id=run.sync_id))
    assert any(isinstance(o, dict) for o in outcomes), outcomes
    assert_no_duplicates(db, store)
    assert len(entries(db, syncId=run.sync_id)) == EXPECTED_ENTRIES


def test_a_second_trigger_while_one_runs_gets_the_running_sync_id(db, store, sync, monkeypatch):
    load_books(db)
    refusals = []

    def trigger_again(batch):
        if not refusals:
            with pytest.raises(SyncAlreadyRunning) as refused:
                sync("v1")
            refusals.append(refused.value.sync_id)

    after_each_batch(monkeypatch, trigger_again)
    summary = sync("v1")
    assert refusals == [summary["syncId"]]
    assert summary["state"] == "completed"
    assert_no_duplicates(db, store)


def _fail_once_after(monkeypatch, owner, method: str, is_target) -> dict:
    """Make `owner.<method>` raise AutoReconnect once, right after the server applied it
    — the connection dropped before the reply came back."""
    calls = {"failed": 0}
    original = getattr(owner, method)

    def flaky(*args, **kwargs):
        result = original(*args, **kwargs)
        if calls["failed"] == 0 and is_target(*args):
            calls["failed"] += 1
            raise AutoReconnect("connection reset after the write was applied")
        return result

    monkeypatch.setattr(owner, method, flaky)
    return calls


def _first_sales_batch(store, batch) -> bool:
    return bool(batch.entries) and batch.entries[0]["source"]["type"] == "sales_invoice"


def test_a_batch_written_but_not_checkpointed_is_retried_without_duplicates(db, store, sync, monkeypatch):
    """A batch committed with its checkpoint, then the connection drops before the reply: Prefect
    retries the step, which goes on after that checkpoint and posts nothing twice."""
    import flows.document_step as document_step

    load_books(db)
    calls = _fail_once_after(monkeypatch, document_step, "write_batch", _first_sales_batch)
    summary = sync("v1")

    assert calls["failed"] == 1
    assert _task_run_attempts(summary, "sales_invoices") == 2  # the failed attempt and its retry
    assert summary["state"] == "completed"
    assert_no_duplicates(db, store)
    assert {e["syncId"] for e in entries(db)} == {summary["syncId"]}
    total = stats(summary)
    assert total["scanned"] == 6 and total["errors"] == 0 and total["reversed"] == 0
    assert stats(summary, "sales_invoices")["scanned"] == 3  # the retried batch is not scanned twice
    assert stats(summary, "purchase_invoices")["synced"] == 1 and stats(summary, "expenses")["synced"] == 2
    assert summary["verification"]["ok"] is True


def test_a_retried_batch_still_counts_the_entries_its_first_attempt_posted(db, store, sync, monkeypatch):
    import flows.document_step as document_step

    load_books(db)
    _fail_once_after(monkeypatch, document_step, "write_batch", _first_sales_batch)
    summary = sync("v1")
    # Every entry this sync wrote is counted once as posted, whichever attempt wrote it.
    assert stats(summary)["synced"] == len(entries(db, syncId=summary["syncId"])) == EXPECTED_ENTRIES
    assert stats(summary, "sales_invoices") == {"scanned": 3, "synced": 4, "reversed": 0, "skipped": 1, "errors": 0}


def test_a_checkpoint_whose_reply_was_lost_is_retried_without_duplicates(db, store, sync, monkeypatch):
    load_books(db)
    calls = _fail_once_after(monkeypatch, RunRepository, "update",
                             lambda self, guard, changes, *rest: "steps.sales_invoices.lastId" in changes)
    summary = sync("v1")
    assert calls["failed"] == 1
    assert _task_run_attempts(summary, "sales_invoices") == 2
    assert_no_duplicates(db, store)
    # The checkpoint landed before the connection dropped, so the counts carry over exactly.
    assert stats(summary) == {"scanned": 6, "synced": 7, "reversed": 0, "skipped": 1, "errors": 0}


def _task_run_attempts(summary, task_name: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterName

    flow_run_id = _flow_run_id_of(summary)
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                                          task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_=task_name)))
    return max((task_run.run_count for task_run in task_runs), default=0)


def _flow_run_id_of(summary):
    from uuid import UUID

    from flows.database import get_store

    return UUID(get_store().runs.get(summary["syncId"]).flow_run_id)


def test_retries_only_on_transient_errors_not_on_bad_data(db, store, sync, monkeypatch):
    """A programming or data error fails the run at once; it is not retried four times."""
    load_books(db)
    calls = {"n": 0}

    def broken(self, *args, **kwargs):
        calls["n"] += 1
        raise ValueError("not a database problem")

    monkeypatch.setattr(EntryStore, "insert_chained", broken)
    with pytest.raises(ValueError, match="not a database problem"):
        sync("v1")
    assert calls["n"] == 1
    run = db.ledger_sync_runs.find_one({"vendorId": "v1"})
    assert run["state"] == "failed" and "not a database problem" in run["error"]
    assert store.runs.running("v1") is None  # the vendor is not blocked


def test_entry_ids_are_unique_in_the_database(db, store, sync):
    load_books(db)
    sync("v1")
    entry = entries(db)[0]
    with pytest.raises(DuplicateKeyError):
        db.ledger_entries.insert_one(copy.deepcopy(entry))
    duplicate = copy.deepcopy(entry)
    duplicate["syncId"] = "another-sync"
    with pytest.raises(DuplicateKeyError):
        db.ledger_entries.insert_one(duplicate)
    assert_no_duplicates(db, store)


def test_writing_a_planned_batch_twice_is_a_no_op(db, store):
    """Two writers reaching the same decision collide on the deterministic ids."""
    from ledger.batch import plan_batch
    from ledger.clock import utc_now
    from ledger.kinds import by_type
    from ledger.sync_run import SyncParameters

    documents = [sales("S1", subtotal="100.00", payments=[payment("P1", "40.00")]), sales("S2", subtotal="5.00")]
    plans = [plan_batch(by_type("sales_invoice"), copy.deepcopy(documents), [], SyncParameters(), "INR", utc_now())
             for _ in range(2)]
    assert [e.id for e in plans[0].entries] == [e.id for e in plans[1].entries]
    first = store.entries.insert(plans[0].entries, "sync-a", utc_now())
    second = store.entries.insert(plans[1].entries, "sync-b", utc_now())
    assert first.inserted_postings == 3 and first.duplicates == 0
    assert second.inserted_postings == 0 and second.duplicates == 3 and not second.inserted_ids
    assert {e["syncId"] for e in entries(db)} == {"sync-a"}
    assert net(store) == {"accounts_receivable": D("65.00"), "bank": D("40.00"), "sales": D("-105.00")}


def test_one_active_run_per_vendor_is_enforced_by_the_database(db, store):
    from ledger.clock import utc_now
    from ledger.sync_run import RunState, SyncRun

    def running(sync_id: str, vendor_id: str) -> SyncRun:
        return SyncRun(sync_id=sync_id, vendor_id=vendor_id, state=RunState.RUNNING, started_at=utc_now(), active=True)

    first = store.runs.create(running("sync_v1_1", "v1"))
    with pytest.raises(SyncAlreadyRunning) as refused:
        store.runs.create(running("sync_v1_2", "v1"))
    assert refused.value.sync_id == "sync_v1_1"
    with pytest.raises(DuplicateKeyError):  # even bypassing the store's own check
        db.ledger_sync_runs.insert_one({"_id": "sync_v1_3", "syncId": "sync_v1_3", "vendorId": "v1", "active": True})
    store.runs.create(running("sync_v2_1", "v2"))
    assert store.runs.close(first.closed(RunState.COMPLETED, None, utc_now())) is not None
    store.runs.create(running("sync_v1_4", "v1"))
    assert get_settings().ledger_base_currency  # settings readable alongside: the fixture set them up
