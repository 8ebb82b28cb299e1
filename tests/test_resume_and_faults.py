"""No fault loses or doubles an entry: a killed sync resumes from its checkpoint,
and task retries ride out a database that goes away for a while."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from cli.demo_data import load
from cli.embedded_db import EmbeddedDatabase, free_port
from flows import progress
from flows.database import get_store, reset_clients
from flows.runs import mark_stale_runs

VENDOR = "resilient"


def ledger_snapshot(db, vendor_id: str) -> list[tuple]:
    """Everything that makes an entry what it is, without when/by which sync it was written."""
    return sorted((e["_id"], e["date"], e.get("reversalOf"), tuple((line["account"], str(line["debit"]),
                                                                         str(line["credit"])) for line in e["lines"]))
                  for e in db.ledger_entries.find({"vendorId": vendor_id}))


def clean_run_snapshot(mongo_uri: str, monkeypatch, sync_flow, documents: int) -> list[tuple]:
    """The ledger an uninterrupted sync of the same (seeded) data produces, in its own database."""
    name = f"clean_{os.getpid()}_{documents}_{time.monotonic_ns()}"
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", name)
    reset_clients()
    database = MongoClient(mongo_uri, tz_aware=True)[name]
    load(database, [VENDOR], documents=documents)
    assert sync_flow(VENDOR)["state"] == "completed"
    snapshot = ledger_snapshot(database, VENDOR)
    database.client.drop_database(name)
    return snapshot


def test_kill_minus_nine_mid_batch_then_resume_gives_the_clean_ledger(db, sync, mongo_uri, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    load(db, [VENDOR], documents=600)
    env = {**os.environ, "MONGODB_URI": mongo_uri, "MONGODB_DB": db.name, "PREFECT_API_URL": PREFECT_API_URL.value(),
           "LEDGER_BATCH_SIZE": "50", "LEDGER_CRASH_AFTER_DOCUMENTS": "170", "LEDGER_STALE_AFTER_SECONDS": "2"}
    script = "from flows.sync_vendor import sync_vendor_ledger; sync_vendor_ledger('resilient')"
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=240)
    killed_at = time.monotonic()
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]

    store = get_store()
    run = store.runs.running(VENDOR)
    assert run is not None and run.state == "running", "a killed run is still marked running until detected"
    step = run.steps["sales_invoices"]
    checkpointed = step.processed
    # A batch and its checkpoint commit together: killed right after one, nothing lies past the checkpoint.
    assert 170 <= checkpointed < db.salesinvoices.count_documents({"vendorId": VENDOR})
    written_before_resume = db.ledger_entries.count_documents({"vendorId": VENDOR})
    assert written_before_resume == run.entries_written

    while not mark_stale_runs(store, stale_after_seconds=2, vendor_id=VENDOR):
        assert time.monotonic() - killed_at < 30, "the stale-run detector never marked the run crashed"
        time.sleep(0.2)
    crashed = store.runs.get(run.sync_id)
    assert crashed.state == "crashed" and "Resume" in crashed.error

    resumed = sync(VENDOR, sync_id=run.sync_id)
    assert resumed["state"] == "completed" and resumed["syncId"] == run.sync_id
    final_step = store.runs.get(run.sync_id).steps["sales_invoices"]
    total_sales = db.salesinvoices.count_documents({"vendorId": VENDOR})
    assert final_step.processed == total_sales  # continued from the checkpoint, not from scratch
    assert written_before_resume > 0

    resumed_snapshot = ledger_snapshot(db, VENDOR)
    assert len({entry[0] for entry in resumed_snapshot}) == len(resumed_snapshot), "no entry twice"
    assert resumed_snapshot == clean_run_snapshot(mongo_uri, monkeypatch, sync, 600)


@pytest.fixture
def own_database(tmp_path, monkeypatch, prefect_server):
    """A database server this test can stop and start again (same port, same data)."""
    port = free_port()
    server = EmbeddedDatabase(tmp_path / "data", port=port)
    server.start()
    monkeypatch.setenv("MONGODB_URI", server.uri)
    monkeypatch.setenv("MONGODB_DB", "faults")
    monkeypatch.setenv("LEDGER_BATCH_SIZE", "40")
    monkeypatch.setenv("LEDGER_DB_TIMEOUT_MS", "2000")
    monkeypatch.setenv("LEDGER_INCREMENTAL_OVERLAP_SECONDS", "0")
    reset_clients()
    yield server, port
    server.stop()
    reset_clients()


def _sync_in_thread(**parameters):
    from flows.sync_vendor import sync_vendor_ledger

    outcome: dict = {}

    def run():
        try:
            outcome["summary"] = sync_vendor_ledger(VENDOR, **parameters)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _wait_for_progress(store, minimum: int = 40) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = store.runs.running(VENDOR)
        if run and run.step("sales_invoices").processed >= minimum:
            return
        time.sleep(0.05)
    raise AssertionError("the sync never got going")


def test_database_outage_within_the_retry_window_is_survived(own_database, mongo_uri, monkeypatch):
    server, port = own_database
    database = MongoClient(server.uri, tz_aware=True)["faults"]
    load(database, [VENDOR], documents=500)
    store = get_store()
    thread, outcome = _sync_in_thread()
    _wait_for_progress(store)
    server.stop()
    time.sleep(2)
    restarted = EmbeddedDatabase(server.storage_path, port=port)
    restarted.start()
    try:
        thread.join(180)
        assert not thread.is_alive()
        assert "error" not in outcome, outcome.get("error")
        assert outcome["summary"]["state"] == "completed"
        snapshot = ledger_snapshot(database, VENDOR)
    finally:
        restarted.stop()
    from flows.sync_vendor import sync_vendor_ledger

    assert snapshot == clean_run_snapshot(mongo_uri, monkeypatch, sync_vendor_ledger, 500)


def test_a_long_outage_fails_the_run_with_sync_error_and_resume_completes_it(own_database, mongo_uri, monkeypatch):
    import flows.sync_vendor as sync_module

    server, port = own_database
    database = MongoClient(server.uri, tz_aware=True)["faults"]
    load(database, [VENDOR], documents=500)
    # Fewer, shorter retries than production so "longer than the retry window" takes seconds here.
    monkeypatch.setattr(sync_module, "sync_documents",
                        sync_module.sync_documents.with_options(retries=1, retry_delay_seconds=0.5))
    events: list[tuple[str, dict]] = []
    listener = lambda event, payload: events.append((event, payload))  # noqa: E731
    progress.add_listener(listener)
    store = get_store()
    try:
        thread, outcome = _sync_in_thread()
        _wait_for_progress(store)
        sync_id = store.runs.running(VENDOR).sync_id
        server.stop()
        thread.join(120)
    finally:
        progress.remove_listener(listener)
    assert isinstance(outcome.get("error"), Exception), "the run must fail when the database stays away"
    failures = [payload for event, payload in events if event == progress.FAILED and payload["syncId"] == sync_id]
    assert failures and "database could not be reached" in failures[0]["error"]

    restarted = EmbeddedDatabase(server.storage_path, port=port)
    restarted.start()
    try:
        reset_clients()
        store = get_store()
        run = store.runs.get(sync_id)
        if run.active:  # it could not record its failure while the database was down
            monkeypatch.setenv("LEDGER_STALE_AFTER_SECONDS", "1")
            time.sleep(1.5)
            assert sync_id in mark_stale_runs(store, 1, VENDOR)
        from flows.sync_vendor import sync_vendor_ledger

        resumed = sync_vendor_ledger(VENDOR, sync_id=sync_id)
        assert resumed["state"] == "completed"
        snapshot = ledger_snapshot(database, VENDOR)
    finally:
        restarted.stop()
    assert snapshot == clean_run_snapshot(mongo_uri, monkeypatch, sync_vendor_ledger, 500)


def _declared_crashed(store) -> bool:
    try:
        return bool(mark_stale_runs(store, stale_after_seconds=2, vendor_id=VENDOR))
    except PyMongoError:
        return False


def test_a_paused_process_declared_crashed_writes_nothing_once_resumed_elsewhere(private_server, monkeypatch):
    """Fencing (SPEC §9): SIGSTOP a flow process mid-sync until its run is declared crashed, resume the run here
    and let it finish, then SIGCONT the paused one: it writes nothing more (entries, monthly balances, run
    record unchanged, byte for byte) and stops; the ledger equals a clean run's."""
    import signal

    from prefect.settings import PREFECT_API_URL

    from flows.sync_vendor import sync_vendor_ledger as sync

    db, mongo_uri = private_server
    load(db, [VENDOR], documents=600)
    env = {**os.environ, "MONGODB_URI": mongo_uri, "MONGODB_DB": db.name, "PREFECT_API_URL": PREFECT_API_URL.value(),
           "LEDGER_BATCH_SIZE": "20", "LEDGER_STALE_AFTER_SECONDS": "2", "LEDGER_VENDOR_CONCURRENCY_LIMIT": "false"}
    script = "from flows.sync_vendor import sync_vendor_ledger; sync_vendor_ledger('resilient')"
    paused = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        store = get_store()
        deadline = time.monotonic() + 90
        while True:
            run = store.runs.running(VENDOR)
            if run is not None and run.step("sales_invoices").processed >= 60:
                break
            assert paused.poll() is None and time.monotonic() < deadline, "the sync never got going"
            time.sleep(0.05)
        paused.send_signal(signal.SIGSTOP)
        sync_id = run.sync_id
        # Paused inside a batch transaction, the run record stays locked until that transaction's
        # lifetime (60 s) ends: until then, declaring it crashed fails, and is tried again.
        while not _declared_crashed(store):
            assert time.monotonic() < deadline + 90, "the paused run was never declared crashed"
            time.sleep(0.2)
        monkeypatch.setenv("LEDGER_VENDOR_CONCURRENCY_LIMIT", "false")
        reset_clients()
        resumed = sync(VENDOR, sync_id=sync_id)
        assert resumed["state"] == "completed" and resumed["syncId"] == sync_id

        def state() -> tuple:
            return (list(db.ledger_entries.find({"vendorId": VENDOR}).sort("_id", 1)),
                    list(db.ledger_balances.find({"vendorId": VENDOR}).sort("_id", 1)),
                    list(db.ledger_balance_days.find({"vendorId": VENDOR}).sort("_id", 1)),
                    db.ledger_sync_runs.find_one({"_id": sync_id}), db.ledger_vendor_state.find_one({"_id": VENDOR}))

        before = state()
        paused.send_signal(signal.SIGCONT)
        output, _ = paused.communicate(timeout=120)
        assert paused.returncode != 0, output.decode()[-2000:]
        assert b"no longer current" in output, output.decode()[-3000:]
        assert state() == before  # the old process wrote nothing after it woke up
    finally:
        if paused.poll() is None:
            paused.send_signal(signal.SIGCONT)
            paused.kill()
            paused.wait()
    snapshot = ledger_snapshot(db, VENDOR)
    assert len({entry[0] for entry in snapshot}) == len(snapshot), "no entry twice"
    assert snapshot == clean_run_snapshot(mongo_uri, monkeypatch, sync, 600)
