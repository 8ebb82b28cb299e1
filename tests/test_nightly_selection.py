"""The nightly syncs the vendors that need it (SPEC §10), found with a constant number of queries.

200 small generated vendors, all synced by the last nightly (their run records are written
directly: posting 200 vendors for real would take minutes and test nothing more); since then
10 changed, one's last run failed and one's last sync left rejected documents. The nightly
syncs exactly those 12, as subflow runs of its own process, and selecting them costs as many
database commands as it does for 100 vendors, each on an index.
"""

from __future__ import annotations

import functools
import os
import time
from datetime import timedelta

import pytest
from pymongo import MongoClient

import flows.database
from flows.database import get_store, reset_clients
from flows.nightly import HORIZON, sync_all_vendors, vendors_needing_sync
from ledger.clock import utc_now
from ledger.kinds import kinds
from ledger.selection import Need
from ledger.store.codec import run_to_document
from ledger.sync_run import RunState, SyncParameters, SyncRun
from tests.factories import expense, purchase, sales
from tests.test_isolation import Recorder

CHANGED = [f"v{n:03d}" for n in range(5, 200, 20)]  # 10 vendors
FAILED, REJECTED = "v150", "v151"


def _generate(store, count: int) -> None:
    """`count` vendors of 1-3 documents each, last changed two days ago and synced a day ago."""
    now = utc_now()
    changed_at, synced_at = now - timedelta(days=2), now - timedelta(days=1)
    builders = {"sales_invoice": sales, "purchase_invoice": purchase, "expense": expense}
    vendors = [f"v{n:03d}" for n in range(count)]
    for position, kind in enumerate(kinds()):
        documents = [builders[kind.type](f"{kind.type}-{vendor}", vendor=vendor, updatedAt=changed_at)
                     for number, vendor in enumerate(vendors) if number % 3 >= position]
        store.sources.collection(kind).insert_many(documents)
    runs = []
    for vendor in vendors:
        run = SyncRun.new(f"sync_{vendor}_1", vendor, SyncParameters(), {}, {}, 1, synced_at)
        closed = run.closed(RunState.FAILED if vendor == FAILED else RunState.COMPLETED, None, synced_at)
        runs.append(run_to_document(closed.model_copy(update={"errors_count": 2 if vendor == REJECTED else 0})))
    store.runs.collection.insert_many(runs)
    store.watch.save_horizon(HORIZON, synced_at - timedelta(minutes=1))


def _change(store, vendors: list[str]) -> None:
    first = kinds()[0]
    store.sources.collection(first).update_many({"vendorId": {"$in": vendors}}, {"$set": {"updatedAt": utc_now()}})


def _selection_commands(recorder: Recorder) -> tuple[list[str], list[dict]]:
    recorder.commands.clear()
    selection = vendors_needing_sync.fn(False)
    return [vendor.vendor_id for vendor in selection.vendors], list(recorder.commands)


@pytest.fixture
def recorder(db, monkeypatch):
    listener = Recorder()
    monkeypatch.setattr(flows.database, "MongoClient", functools.partial(MongoClient, event_listeners=[listener]))
    reset_clients()
    return listener


def test_the_nightly_syncs_exactly_the_vendors_that_need_it(prefect_server, db, recorder, mongo_uri, monkeypatch):
    store = get_store()
    _generate(store, 200)
    _change(store, CHANGED)
    selected, commands = _selection_commands(recorder)
    assert sorted(selected) == sorted([*CHANGED, FAILED, REJECTED])
    needs = {vendor.vendor_id: vendor.needs for vendor in vendors_needing_sync.fn(False).vendors}
    assert needs[FAILED] == (Need.INCOMPLETE,) and needs[REJECTED] == (Need.REJECTIONS,)
    assert {needs[vendor] for vendor in CHANGED} == {(Need.CHANGED,)}

    # The horizon, one aggregation per source collection and one over the runs, each on an index.
    assert [c["name"] for c in commands] == ["find", *["aggregate"] * (len(kinds()) + 1)]
    aggregations = [c["command"] for c in commands if c["name"] == "aggregate"]
    for command in aggregations:
        plan = db.command("aggregate", command["aggregate"], pipeline=command["pipeline"], explain=True)
        winning = plan["stages"][0]["$cursor"]["queryPlanner"]["winningPlan"]
        assert winning["inputStage"]["stage"] == "IXSCAN", (command["aggregate"], winning)
        assert winning["inputStage"]["indexName"] in ("ledger_sync_changes", "by_start")

    # The same number of commands for half the vendors.
    half = f"{db.name}_half"
    monkeypatch.setenv("MONGODB_DB", half)
    reset_clients()
    try:
        smaller = get_store()
        _generate(smaller, 100)
        _change(smaller, CHANGED[:5])
        selected_of_100, commands_of_100 = _selection_commands(recorder)
        assert len(selected_of_100) == 7
        assert len(commands_of_100) == len(commands)
    finally:
        MongoClient(mongo_uri).drop_database(half)
        monkeypatch.setenv("MONGODB_DB", db.name)
        reset_clients()

    started = utc_now()
    began = time.monotonic()
    outcome = sync_all_vendors()
    seconds = time.monotonic() - began
    assert outcome == {vendor: "completed" for vendor in sorted([*CHANGED, FAILED, REJECTED])}
    new_runs = list(db.ledger_sync_runs.find({"startedAt": {"$gte": started}}))
    assert sorted(run["vendorId"] for run in new_runs) == sorted(outcome)
    assert all(run["state"] == "completed" and run["flowRunId"] for run in new_runs)
    print(f"\nMEASURE nightly over 200 vendors, 12 needing a sync: {seconds:.1f} s; selection "
          f"{len(commands)} commands for 200 vendors and for 100")

    # The next nightly finds nothing left to do.
    assert _selection_commands(recorder)[0] == []


def test_a_vendor_already_running_is_skipped_and_keeps_its_changes(prefect_server, db, recorder):
    store = get_store()
    _generate(store, 3)
    _change(store, ["v001"])
    clicked = SyncRun.new("sync_v001_click", "v001", SyncParameters(), {}, {}, 2, utc_now())
    store.runs.create(clicked)
    assert sync_all_vendors() == {"v001": "skipped: a sync is already running"}
    store.runs.close(clicked.closed(RunState.COMPLETED, None, utc_now()))
    # The horizon stayed before the running sync: changes made while it ran are still found.
    assert store.watch.horizon(HORIZON) <= clicked.started_at
    assert os.environ["MONGODB_DB"] == db.name
