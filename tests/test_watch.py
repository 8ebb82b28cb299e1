"""Continuous sync (SPEC §10): the watcher posts every change within seconds, survives kill -9, falls back to
an incremental sync when its resume token is gone, sees what `updatedAt` does not, and never writes a
vendor at the same time as a manual sync."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from flows.database import get_store
from flows.verify import verify_vendor
from ledger.store.watch import LIVE_WITHIN_SECONDS
from tests.factories import D, expense, insert, payment, sales, utc

VENDOR = "live"
LONG_AGO = utc(2025, 1, 2)


def now() -> datetime:
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def wait_until(check, timeout: float = 20.0, what: str = "the change to reach the ledger"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Watcher:
    """The real watcher flow in a thread of this process (the session's Prefect server)."""

    def __init__(self, **options):
        from flows.watch import watch_sources

        self.outcome: dict = {}
        self.thread = threading.Thread(target=self._run, args=(watch_sources, options), daemon=True)

    def _run(self, watch_sources, options) -> None:
        try:
            self.outcome["totals"] = watch_sources(**options)
        except Exception as error:  # noqa: BLE001 - the test reads it
            self.outcome["error"] = error

    def __enter__(self) -> Watcher:
        self.thread.start()
        store = get_store()
        wait_until(lambda: store.watch.get("default").get("aliveAt"), what="the watcher to start")
        return self

    def __exit__(self, *exc) -> None:
        from flows.watch import request_stop

        request_stop()
        self.thread.join(60)
        assert not self.thread.is_alive()
        assert "error" not in self.outcome, self.outcome


def receivable(store) -> D:
    return store.entries.balances(VENDOR).net_balances().get("accounts_receivable", D(0))


def test_insert_update_void_delete_and_an_old_updated_at_each_reach_the_ledger(db, store, sync):
    insert(db, "salesinvoices", sales("S2", vendor=VENDOR, subtotal="200.00"),
           sales("S3", vendor=VENDOR, subtotal="300.00"), sales("S4", vendor=VENDOR, subtotal="400.00"))
    sync(VENDOR)
    assert receivable(store) == D("900.00")
    with Watcher() as watcher:
        started = time.monotonic()
        insert(db, "salesinvoices", sales("S1", vendor=VENDOR, subtotal="100.00", updatedAt=now()))
        wait_until(lambda: receivable(store) == D("1000.00"))
        first_latency = time.monotonic() - started
        db.salesinvoices.update_one({"_id": "S2"}, {"$set": {"subtotal": "250.00", "total": "250.00",
                                                             "updatedAt": now()}})
        wait_until(lambda: receivable(store) == D("1050.00"))
        db.salesinvoices.update_one({"_id": "S3"}, {"$set": {"status": "void", "updatedAt": now()}})
        wait_until(lambda: receivable(store) == D("750.00"))
        db.salesinvoices.delete_one({"_id": "S4"})
        wait_until(lambda: receivable(store) == D("350.00"))
        # An import with an old updatedAt: no incremental sync would read it; the change stream sees it.
        insert(db, "expenses", expense("E-import", vendor=VENDOR, amount="40.00", paymentStatus="unpaid",
                                       paymentMethod=None, updatedAt=LONG_AGO, date=LONG_AGO))
        wait_until(lambda: store.entries.balances(VENDOR).net_balances().get("expenses:office-rent") == D("40.00"))
    assert watcher.outcome["totals"]["microBatches"] >= 5
    stopped = store.watch.live("default", now(), LIVE_WITHIN_SECONDS)
    assert stopped["live"] and stopped["liveSince"] is not None  # said so within the last seconds
    assert not store.watch.live("default", now() + timedelta(seconds=LIVE_WITHIN_SECONDS + 1),
                                LIVE_WITHIN_SECONDS)["live"]  # silent since: the badge goes out
    assert first_latency < 10, first_latency
    reasons = {e["source"]["id"]: e.get("reason") for e in db.ledger_entries.find({"vendorId": VENDOR,
                                                                                   "reversalOf": {"$exists": True}})}
    assert reasons == {"S2": "changed", "S3": "voided", "S4": "deleted"}
    runs = list(db.ledger_sync_runs.find({"vendorId": VENDOR, "parameters.documents": {"$exists": True}}))
    assert runs and all(run["state"] == "completed" for run in runs)  # one run record per micro-batch
    assert verify_vendor(store, VENDOR)["ok"]
    again = sync(VENDOR, full=True)  # the ledger is what a full sync of the final state makes it
    assert again["stats"]["total"]["synced"] == again["stats"]["total"]["reversed"] == 0


def test_an_invalid_resume_token_falls_back_to_an_incremental_sync(db, store, sync):
    sync(VENDOR)
    store.watch.save("default", {"_data": "not-a-token"}, now())
    insert(db, "salesinvoices", sales("S-missed", vendor=VENDOR, subtotal="70.00", updatedAt=now()))
    with Watcher() as watcher:
        wait_until(lambda: receivable(store) == D("70.00"))
    assert watcher.outcome["totals"]["fallbacks"] == 1
    assert store.watch.get("default")["token"] != {"_data": "not-a-token"}


def test_a_manual_sync_while_the_watcher_runs_never_double_writes(db, store, sync):
    insert(db, "salesinvoices", *[sales(f"S{n}", vendor=VENDOR, subtotal="10.00") for n in range(40)])
    with Watcher():
        for round_ in range(3):
            for n in range(40):
                db.salesinvoices.update_one({"_id": f"S{n}"}, {"$set": {
                    "subtotal": f"{11 + round_}.00", "total": f"{11 + round_}.00", "updatedAt": now()}})
            try:
                sync(VENDOR)  # races the watcher's micro-batches for the same documents
            except Exception as error:  # noqa: BLE001 - refused while a micro-batch runs: that is the rule
                assert "already running" in str(error)
        wait_until(lambda: receivable(store) == D("520.00"), timeout=40)
    entries = list(db.ledger_entries.find({"vendorId": VENDOR}))
    active = [e for e in entries if "reversalOf" not in e
              and not any(r.get("reversalOf") == e["_id"] for r in entries)]
    assert len(active) == 40 and len({e["source"]["id"] for e in active}) == 40  # one posting per document
    assert verify_vendor(store, VENDOR)["ok"]


def test_a_watcher_killed_mid_burst_goes_on_from_its_token(private_server):
    """Killed inside a micro-batch, its transaction stays open until the server's transaction lifetime
    (60 s) ends; the next watcher waits that out and posts everything once."""
    from prefect.settings import PREFECT_API_URL

    from flows.sync_vendor import sync_vendor_ledger as sync

    db, mongo_uri = private_server
    env = {**os.environ, "MONGODB_URI": mongo_uri, "MONGODB_DB": db.name, "PREFECT_API_URL": PREFECT_API_URL.value(),
           "LEDGER_VENDOR_CONCURRENCY_LIMIT": "false", "LEDGER_STALE_AFTER_SECONDS": "3"}

    def start() -> subprocess.Popen:
        before = get_store().watch.get("default").get("aliveAt")
        process = subprocess.Popen([sys.executable, "-m", "cli.main", "watch", "--window", "0.2"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        wait_until(lambda: get_store().watch.get("default").get("aliveAt") not in (None, before), timeout=60,
                   what="the watcher to start")
        return process

    store = get_store()
    watcher = start()
    try:
        for n in range(300):  # a burst: invoices with payments, some voided again
            db.salesinvoices.insert_one(sales(f"B{n}", vendor=VENDOR, subtotal="10.00", status="partially_paid",
                                              payments=[payment(f"B{n}-p", "4.00")], updatedAt=now()))
            if n == 120:
                wait_until(lambda: db.ledger_entries.count_documents({"vendorId": VENDOR}) > 20, timeout=60)
                watcher.send_signal(signal.SIGKILL)
                watcher.wait(10)
            if n % 50 == 0 and n:
                db.salesinvoices.update_one({"_id": f"B{n - 1}"}, {"$set": {"status": "void", "updatedAt": now()}})
        watcher = start()
        wait_until(lambda: receivable(store) == D("6.00") * (300 - 5), timeout=150, what="the burst to be posted")
    finally:
        watcher.send_signal(signal.SIGTERM)  # stops after the micro-batch it is posting
        output, _ = watcher.communicate(timeout=60)
    assert watcher.returncode == 0 and json.loads(output)["changes"] > 0
    assert store.runs.running(VENDOR) is None
    entries = list(db.ledger_entries.find({"vendorId": VENDOR}))
    assert len({e["_id"] for e in entries}) == len(entries)
    assert verify_vendor(store, VENDOR)["ok"]
    final = sync(VENDOR, full=True)  # the ledger equals a full sync of the final state: it changes nothing
    assert final["stats"]["total"]["synced"] == final["stats"]["total"]["reversed"] == 0
