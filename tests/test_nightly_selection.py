"""The nightly syncs the vendors that need it (SPEC §10), found with a constant number of queries.

200 small generated vendors, all synced by the last nightly (`bench.nightly.generate_vendors`
writes their run records directly: posting 200 vendors for real would take minutes and test
nothing more); since then
10 changed, one's last run failed and one's last sync left rejected documents. The nightly
syncs exactly those 12, as subflow runs of its own process, and selecting them costs as many
database commands as it does for 100 vendors, each on an index.
"""

from __future__ import annotations

import time
from datetime import timedelta

from pymongo import MongoClient

from bench.nightly import change, generate_vendors
from flows.database import get_store, reset_clients
from flows.nightly import HORIZON, sync_all_vendors, vendors_needing_sync
from ledger.clock import utc_now
from ledger.kinds import kinds
from ledger.selection import Changes, Need, RunFact, select
from ledger.sync_run import RunState, SyncParameters, SyncRun
from tests.conftest import Recorder

CHANGED = [f"v{n:03d}" for n in range(5, 200, 20)]  # 10 vendors
FAILED, REJECTED = "v150", "v151"


def _selection_commands(recorder: Recorder) -> tuple[list[str], list[dict]]:
    recorder.commands.clear()
    selection = vendors_needing_sync.fn(False)
    return [vendor.vendor_id for vendor in selection.vendors], list(recorder.commands)


def test_the_nightly_syncs_exactly_the_vendors_that_need_it(prefect_server, db, recorder, mongo_uri, monkeypatch):
    store = get_store()
    generate_vendors(store, 200, failed=(FAILED,), rejected=(REJECTED,))
    change(store, CHANGED)
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
        generate_vendors(smaller, 100)
        change(smaller, CHANGED[:5])
        selected_of_100, commands_of_100 = _selection_commands(recorder)
        assert selected_of_100 == CHANGED[:5]  # (the failed and the rejected vendor are beyond the first 100)
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
    mean_ms = sum(run["durationMs"] for run in new_runs) / len(new_runs)
    print(f"\nMEASURE nightly over 200 vendors, 12 needing a sync: {seconds:.1f} s (a vendor's run "
          f"{mean_ms / 1000:.1f} s on average); selection {len(commands)} commands for 200 vendors and for 100")

    # The next nightly finds nothing left to do.
    assert _selection_commands(recorder)[0] == []


def test_a_vendor_already_running_is_skipped_and_keeps_its_changes(prefect_server, db, recorder):
    store = get_store()
    generate_vendors(store, 3)
    change(store, ["v001"])
    clicked = SyncRun.new("sync_v001_click", "v001", SyncParameters(), {}, {}, 2, utc_now())
    store.runs.create(clicked)
    assert sync_all_vendors() == {"v001": "skipped: a sync is already running"}
    store.runs.close(clicked.closed(RunState.COMPLETED, None, utc_now()))
    # The horizon stayed before the running sync: changes made while it ran are still found.
    assert store.watch.horizon(HORIZON) <= clicked.started_at


def test_selection_rules():
    """The pure rules: a sync after the change covers it (per kind), the latest run decides, active
    runs hold the horizon back."""
    now = utc_now()
    hour = timedelta(hours=1)
    changes = {"sales_invoices": {"clicked": Changes(1, now - 2 * hour), "other-kind": Changes(2, now - 2 * hour),
                                  "new": Changes(3, now - 2 * hour)}}
    runs = [RunFact("clicked", "completed", now - hour, coverage=("sales_invoices",)),
            RunFact("other-kind", "completed", now - hour, coverage=("expenses",)),
            RunFact("retried", "failed", now - 3 * hour), RunFact("retried", "completed", now - hour),
            RunFact("fixed", "completed", now - 3 * hour, errors=1), RunFact("fixed", "completed", now - hour),
            RunFact("busy", "running", now - 5 * hour, active=True)]
    selection = select(changes, runs, timedelta(seconds=5), now)
    assert {vendor.vendor_id: vendor.needs for vendor in selection.vendors} == {
        "other-kind": (Need.CHANGED,), "new": (Need.CHANGED,), "busy": (Need.INCOMPLETE,)}
    assert {vendor.vendor_id: vendor.documents for vendor in selection.vendors}["new"] == 3
    assert selection.horizon == now - 5 * hour


def test_a_run_its_subflow_never_claimed_is_closed_failed(db):
    from flows.nightly import _close_unclaimed

    store = get_store()
    store.runs.create(SyncRun.new("sync_v9_1", "v9", SyncParameters(), {}, {}, 1, utc_now()))
    _close_unclaimed("sync_v9_1", "the sync could not start: boom")
    run = store.runs.get("sync_v9_1")
    assert run is not None and run.state == RunState.FAILED and not run.active and "boom" in (run.error or "")
