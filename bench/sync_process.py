"""One benchmark sync in its own process: runs the real flow and reports what it cost.

Prints one JSON object: the run's duration (and its steps'), the database commands
it sent (by name, via pymongo command monitoring) and the process's peak RSS.
"""

from __future__ import annotations

import json
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
    """The trial balance, current and as of a day, as the API reads it: commands and time of each."""
    from datetime import date

    from flows.database import get_store

    store = get_store()
    store.books.current(vendor_id)  # warm: the pooled connection, not the read, is what a first call pays
    figures = {}
    for name, read in (("current", lambda: store.books.current(vendor_id)),
                       ("asOf", lambda: store.books.as_of(vendor_id, date.fromisoformat(as_of)))):
        counter.commands.clear()
        started = time.perf_counter()
        for _ in range(5):
            read()
        figures[name] = {"seconds": (time.perf_counter() - started) / 5, "commands": sum(counter.commands.values()) / 5}
    print(json.dumps(figures))


def main() -> None:
    """`VENDOR full|incremental [JSON parameters]`, or `VENDOR books AS_OF`."""
    vendor_id, mode = sys.argv[1], sys.argv[2]
    counter = CommandCounter()
    monitoring.register(counter)
    if mode == "books":
        read_books(vendor_id, sys.argv[3], counter)
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
