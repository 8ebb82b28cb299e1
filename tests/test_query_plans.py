"""Every query a small sync sends is planned on an index: what a sync reads must cost what it touches,
not the size of the books (SPEC §7). The commands are captured from real syncs and explained on the
same server, so a query shape no index serves shows up whatever code sent it."""

from __future__ import annotations

from pymongo import monitoring

from flows.database import reset_clients
from ledger.ids import id_key
from tests.factories import insert, payment, purchase, sales

VENDOR = "v1"
EXPLAINED = {"find", "aggregate", "count", "distinct", "findAndModify", "update", "delete"}


class Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[tuple[str, dict]] = []

    def started(self, event):
        if event.command_name in EXPLAINED:
            self.commands.append((event.command_name, event.command))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def _filters(name: str, command: dict) -> list[tuple[str, dict]]:
    """(collection, filter) of each query in a command."""
    collection = command[name]
    if name == "aggregate":
        first = command["pipeline"][0] if command["pipeline"] else {}
        return [(collection, first["$match"])] if "$match" in first else [(collection, {})]
    if name in ("find", "count", "distinct"):
        return [(collection, command.get("filter", command.get("query", {})))]
    if name == "findAndModify":
        return [(collection, command.get("query", {}))]
    key = "updates" if name == "update" else "deletes"
    return [(collection, statement["q"]) for statement in command.get(key, [])]


def test_no_query_of_a_small_or_selective_sync_scans_a_collection(db, sync):
    insert(db, "salesinvoices", *[sales(f"S{n}", subtotal="100.00", status="partially_paid",
                                        payments=[payment(f"P{n}", "40.00")]) for n in range(300)])
    insert(db, "purchaseinvoices", *[purchase(f"B{n}", subtotal="50.00") for n in range(100)])
    sync(VENDOR)
    recorder = Recorder()
    monitoring.register(recorder)
    reset_clients()  # listeners apply to clients made after registering
    try:
        db.salesinvoices.update_one({"_id": "S7"}, {"$set": {"subtotal": "110.00", "total": "110.00"}})
        sync(VENDOR, documents={"sales_invoices": [id_key("S7")]})  # a watcher's micro-batch
        sync(VENDOR)  # an incremental sync with nothing to do
        sync(VENDOR, date_from="2026-03-01", date_to="2026-03-31")  # a selective one
    finally:
        monitoring._LISTENERS.command_listeners.remove(recorder)
        reset_clients()
    scans = []
    for name, command in recorder.commands:
        for collection, query in _filters(name, command):
            if not query or collection.startswith("system."):
                continue  # no filter: a whole-collection read by design (none expected here)
            plan = str(db[collection].find(query).explain()["queryPlanner"]["winningPlan"])
            if "COLLSCAN" in plan:
                scans.append((collection, query))
    shapes = sorted({f"{collection}: {sorted(query)}" for collection, query in scans})
    assert not scans, "queries planned as a collection scan:\n" + "\n".join(shapes)
    assert len(recorder.commands) > 20  # the syncs' reads were captured
