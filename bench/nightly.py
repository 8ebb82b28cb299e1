"""The nightly over many small vendors (SPEC §10): what the unchanged ones cost.

`generate_vendors` writes vendors of 1-3 documents each, all synced a day ago by a previous
nightly (run records and horizon written directly: a real first nightly of 1,000 vendors would
take longer than the benchmark and measure nothing asked here). `python -m bench.nightly` runs
the real nightly flow once in its own process and prints one JSON object: its wall time, the
selection's time and database commands, and each vendor's final state.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from ledger.clock import utc_now
from ledger.kinds import kinds
from ledger.store import Store
from ledger.store.codec import run_to_document
from ledger.sync_run import RunState, SyncParameters, SyncRun

ROOT = Path(__file__).resolve().parent.parent
HORIZON = "nightly"  # flows.nightly.HORIZON, without importing Prefect here


def _document(kind_type: str, vendor: str, updated_at) -> dict:
    day = utc_now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    common = {"_id": f"{kind_type}-{vendor}", "vendorId": vendor, "updatedAt": updated_at, "isDeleted": False,
              "currency": "INR"}
    if kind_type == "expense":
        return {**common, "date": day, "category": "Office Rent", "description": "rent", "amount": "100.00",
                "taxAmount": "0.00", "paymentStatus": "paid", "paymentMethod": "bank"}
    number = {"invoiceNumber": f"INV-{vendor}", "customer": {"id": "c1", "name": "Asha Traders"}} \
        if kind_type == "sales_invoice" else {"billNumber": f"BILL-{vendor}", "supplier": {"id": "s1", "name": "Metro"}}
    return {**common, **number, "invoiceDate": day, "subtotal": "1000.00", "discountTotal": "0.00",
            "taxTotal": "180.00", "total": "1180.00", "status": "issued", "payments": []}


def generate_vendors(store: Store, count: int, failed: tuple[str, ...] = (),
                     rejected: tuple[str, ...] = ()) -> list[str]:
    """`v000`, `v001`, …: vendor n has n % 3 + 1 documents, last changed two days ago, synced a day ago
    (the `failed` ones' last run failed, the `rejected` ones' left two rejected documents)."""
    now = utc_now()
    changed_at, synced_at = now - timedelta(days=2), now - timedelta(days=1)
    vendors = [f"v{n:03d}" for n in range(count)]
    for position, kind in enumerate(kinds()):
        store.sources.collection(kind).insert_many([_document(kind.type, vendor, changed_at)
                                                    for number, vendor in enumerate(vendors) if number % 3 >= position])
    runs = []
    for vendor in vendors:
        run = SyncRun.new(f"sync_{vendor}_1", vendor, SyncParameters(), {}, {}, 1, synced_at)
        closed = run.closed(RunState.FAILED if vendor in failed else RunState.COMPLETED, None, synced_at)
        runs.append(run_to_document(closed.model_copy(update={"errors_count": 2 if vendor in rejected else 0})))
    store.runs.collection.insert_many(runs)
    store.watch.save_horizon(HORIZON, synced_at - timedelta(minutes=1))
    return vendors


def change(store: Store, vendors: list[str]) -> None:
    """The vendors' first-kind documents changed just now."""
    store.sources.collection(kinds()[0]).update_many({"vendorId": {"$in": vendors}}, {"$set": {"updatedAt": utc_now()}})


def run_nightly(env: dict) -> dict:
    output = subprocess.run([sys.executable, "-m", "bench.nightly"], env=env, cwd=ROOT, capture_output=True,
                            text=True, check=False)
    if output.returncode != 0:
        raise RuntimeError(f"benchmark nightly failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    from pymongo import monitoring

    from bench.sync_process import CommandCounter

    counter = CommandCounter()
    monitoring.register(counter)
    from flows.database import get_store
    from flows.nightly import sync_all_vendors, vendors_needing_sync

    get_store()
    counter.commands.clear()
    started = time.perf_counter()
    selection = vendors_needing_sync.fn(False)
    selection_seconds = time.perf_counter() - started
    selection_commands = sum(counter.commands.values())
    started = time.perf_counter()
    outcome = sync_all_vendors()
    print(json.dumps({"wallSeconds": time.perf_counter() - started, "selectionSeconds": selection_seconds,
                      "selectionCommands": selection_commands, "selected": len(selection.vendors),
                      "outcome": outcome}))


if __name__ == "__main__":
    main()
