"""One benchmark sync in its own process: runs the real flow and reports what it cost.

Prints one JSON object: the run's duration (and its steps'), the database commands
it sent (by name, via pymongo command monitoring) and the process's peak RSS.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter

from pymongo import monitoring


class CommandCounter(monitoring.CommandListener):
    def __init__(self):
        self.commands: Counter[str] = Counter()

    def started(self, event):
        self.commands[event.command_name] += 1

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


def peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM). Not ru_maxrss: Linux carries the
    parent's peak from before exec into it."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def read_books(vendor_id: str, as_of: str, counter: CommandCounter) -> None:
    """Every read of the books as the API makes it (SPEC §8), around the day `as_of`: commands and time of each."""
    from datetime import date, timedelta

    from flows import books
    from flows.database import get_store
    from ledger.balances import day_end
    from ledger.kinds import Side
    from ledger.store.codec import cents

    store = get_store()
    day = date.fromisoformat(as_of)
    month_from = day.replace(day=1)
    month_to = (month_from + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    store.books.current(vendor_id)  # warm: the pooled connection, not the read, is what a first call pays
    reads = {
        "trialBalance": lambda: store.books.current(vendor_id),
        "asOf": lambda: store.books.as_of(vendor_id, day),
        "ledgerPage": lambda: books.ledger_view(store, vendor_id, "accounts_receivable", month_from, month_to, 100),
        "profitAndLossMonth": lambda: books.profit_and_loss_view(store, vendor_id, month_from, month_to),
        "balanceSheet": lambda: books.balance_sheet_view(store, vendor_id, day),
        "aging": lambda: books.aging_view(store, vendor_id, Side.RECEIVABLE, day),
    }
    figures: dict[str, dict[str, float]] = {}
    for name, read in reads.items():
        counter.commands.clear()
        seconds = []
        for _ in range(CALLS):
            started = time.perf_counter()
            read()
            seconds.append(time.perf_counter() - started)
        figures[name] = {"seconds": statistics.median(seconds), "commands": sum(counter.commands.values()) / CALLS}
    # The aging adds up every document open on the day: what it must read grows with them, not with the ledger.
    open_rows = store.entries.open_on_account(vendor_id, "accounts_receivable", day_end(day))
    figures["aging"]["openDocuments"] = sum(1 for row in open_rows if cents(row["debit"]) != cents(row["credit"]))
    print(json.dumps(figures))


CALLS = 9  # each read's time is the median of this many calls (one hiccup of a shared machine does not show)


def export_books(vendor_id: str) -> None:
    """Stream the Beancount export to nowhere: its size and this process's peak memory."""
    from flows.books import export_chunks
    from flows.database import get_store

    written = sum(len(chunk) for chunk in export_chunks(get_store(), vendor_id, "beancount", None, None))
    print(json.dumps({"bytes": written, "peakRssMb": peak_rss_mb()}))


def main() -> None:
    """`VENDOR full|incremental [JSON parameters]`, `VENDOR books AS_OF` or `VENDOR export`."""
    vendor_id, mode = sys.argv[1], sys.argv[2]
    counter = CommandCounter()
    monitoring.register(counter)
    if mode == "books":
        read_books(vendor_id, sys.argv[3], counter)
        return
    if mode == "export":
        export_books(vendor_id)
        return
    full = mode == "full"
    parameters = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    # Count only the sync's own commands, not the one-off index set-up.
    from flows.database import get_store
    from flows.sync_vendor import summary_of, sync_vendor_ledger

    get_store()
    counter.commands.clear()
    started = time.perf_counter()
    summary = summary_of(sync_vendor_ledger(vendor_id, full=full, return_state=True, **parameters))
    wall = time.perf_counter() - started
    commands = dict(counter.commands)
    run = get_store().runs.get(summary["syncId"])  # where the time went, for reading the JSON (not counted)
    print(json.dumps({
        "durationMs": summary["durationMs"], "wallSeconds": wall, "state": summary["state"],
        "stats": summary["stats"]["total"], "commands": commands, "commandsTotal": sum(commands.values()),
        "peakRssMb": peak_rss_mb(),
        "stepMs": {name: step.duration_ms for name, step in run.steps.items()} if run else {},
    }))


if __name__ == "__main__":
    main()
