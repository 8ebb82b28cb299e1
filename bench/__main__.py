"""`make bench`: sync against the floor, round trips, memory, at N and 4N documents.

Every figure is a ratio or a count from this one run on this one server, because
absolute times on a shared machine drift; each sync is compared with the floor
measured right after it, and at N that pair is repeated (the median is shown, with
the range). Writes bench/results/latest.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from bson.decimal128 import Decimal128
from pymongo import MongoClient

from bench import nightly
from cli.demo_data import generate
from cli.embedded_db import EmbeddedDatabase, free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def load_documents(db, vendor_id: str, documents: int) -> int:
    pending: dict[str, list[dict]] = {}
    count = 0
    for collection, document in generate(vendor_id, documents, seed=11, broken=False):
        pending.setdefault(collection, []).append(document)
        count += 1
        if len(pending[collection]) >= 2000:
            db[collection].insert_many(pending.pop(collection), ordered=False)
    for collection, rest in pending.items():
        db[collection].insert_many(rest, ordered=False)
    return count


def floor_seconds(db, vendor_id: str) -> float:
    """The least any sync must do: read the vendor's source documents and
    `insert_many` the same ledger entries into a collection with the same indexes."""
    floor = db[f"floor_entries_{vendor_id}"]
    floor.drop()
    for name, index in db.ledger_entries.index_information().items():
        if name != "_id_":
            options = {key: index[key] for key in ("unique", "sparse", "partialFilterExpression") if key in index}
            floor.create_index(index["key"], name=name, **options)
    elapsed = 0.0
    for collection in ("salesinvoices", "purchaseinvoices", "expenses"):
        started = time.perf_counter()
        for _ in db[collection].find({"vendorId": vendor_id}, batch_size=1000):
            pass
        elapsed += time.perf_counter() - started
    batch: list[dict] = []
    for entry in db.ledger_entries.find({"vendorId": vendor_id}, batch_size=1000):  # copied untimed, a batch at a time
        batch.append(entry)
        if len(batch) == 1000:
            elapsed += _timed_insert(floor, batch)
            batch = []
    if batch:
        elapsed += _timed_insert(floor, batch)
    floor.drop()
    return elapsed


def _timed_insert(collection, documents: list[dict]) -> float:
    started = time.perf_counter()
    collection.insert_many(documents, ordered=False)
    return time.perf_counter() - started


def run_sync(env: dict, vendor_id: str, full: bool, **parameters) -> dict:
    return _in_process(env, vendor_id, "full" if full else "incremental", json.dumps(parameters))


def read_books(env: dict, vendor_id: str, as_of: str) -> dict:
    return _in_process(env, vendor_id, "books", as_of)


def export_books(env: dict, vendor_id: str) -> dict:
    return _in_process(env, vendor_id, "export")


def _in_process(env: dict, *argv: str) -> dict:
    output = subprocess.run([sys.executable, "-m", "bench.sync_process", *argv],
                            env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if output.returncode != 0:
        raise RuntimeError(f"benchmark sync failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def start_prefect(home: Path, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
         "--analytics-off"], env={**env, "PREFECT_HOME": str(home)}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    import urllib.request

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the Prefect server did not start")


def measure_size(client: MongoClient, env: dict, size: int, repetition: int) -> dict:
    """One full sync, its floor and a no-change re-sync of `size` documents, in a database of its own
    (so no measurement inherits another's data), dropped afterwards."""
    name = f"bench_{size}_{repetition}"
    db = client[name]
    env = {**env, "MONGODB_DB": name}
    vendor_id = f"bench-{size}"
    # Another vendor shares the collections, as in any multi-tenant app: the sync must pay for its own
    # documents only (a plan that walks whole collections shows here).
    load_documents(db, f"neighbour-{size}", size // 2)
    documents = load_documents(db, vendor_id, size)
    full = run_sync(env, vendor_id, full=True)
    entries = db.ledger_entries.count_documents({"vendorId": vendor_id})
    floor = floor_seconds(db, vendor_id)
    # A no-change re-sync takes ~0.1 s, where one hiccup of a shared machine shows: the median of three.
    resync = median_of_three(lambda: run_sync(env, vendor_id, full=False))
    changes = measure_changes(db, env, vendor_id, documents, full, resync)
    client.drop_database(name)
    return {"documents": documents, "entries": entries, "fullSyncSeconds": full["durationMs"] / 1000,
            "floorSeconds": round(floor, 3), "syncOverFloor": round(full["durationMs"] / 1000 / floor, 2),
            "resyncOverFull": round(resync["durationMs"] / full["durationMs"], 3),
            "peakRssMb": round(full["peakRssMb"], 1),
            "fullCommands": full["commands"], "resyncCommands": resync["commands"],
            "fullStepMs": full["stepMs"], "resyncStepMs": resync["stepMs"], **changes}


def median_of_three(sync) -> dict:
    """A short sync takes ~0.1 s, where one hiccup of a shared machine shows: the median of three."""
    return sorted((sync() for _ in range(3)), key=lambda run: run["durationMs"])[1]


def measure_changes(db, env: dict, vendor_id: str, documents: int, full: dict, resync: dict) -> dict:
    """What a small change costs against a no-change re-sync, a month's selective sync against a full
    one, a no-change re-sync with rejected documents outstanding, and the trial balance reads."""
    expense = db.expenses.find_one({"vendorId": vendor_id, "paymentStatus": "paid"})
    amount = expense["amount"].to_decimal() if isinstance(expense["amount"], Decimal128) else Decimal(
        str(expense["amount"]))
    db.expenses.update_one({"_id": expense["_id"]}, {"$set": {"amount": Decimal128(amount + 1),
                                                              "updatedAt": datetime.now(UTC)}})
    fix = run_sync(env, vendor_id, full=False)
    days = sorted(doc["date"] for doc in db.expenses.find({"vendorId": vendor_id}, {"date": 1}))
    middle = days[len(days) // 2]
    month_from = middle.replace(day=1)
    month_to = (month_from + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    in_month = sum(db[collection].count_documents({"vendorId": vendor_id, field: {
        "$gte": month_from, "$lt": month_to + timedelta(days=1)}})
        for collection, field in (("salesinvoices", "invoiceDate"), ("purchaseinvoices", "invoiceDate"),
                                  ("expenses", "date")))
    month = run_sync(env, vendor_id, full=False, date_from=month_from.date().isoformat(),
                     date_to=month_to.date().isoformat())
    books = read_books(env, vendor_id, middle.date().isoformat())
    export = export_books(env, vendor_id)
    # A few new documents, four of them broken, written now (the demo dates `updatedAt` in the past,
    # which an incremental sync rightly does not read).
    for collection, document in generate(vendor_id, 8, seed=99):
        db[collection].insert_one({**document, "updatedAt": datetime.now(UTC)})
    with_rejections = run_sync(env, vendor_id, full=False)
    resync_rejected = median_of_three(lambda: run_sync(env, vendor_id, full=False))
    return {
        "fixOverResync": round(fix["durationMs"] / resync["durationMs"], 2), "fixCommands": fix["commandsTotal"],
        "monthShare": round(in_month / documents, 3),
        "monthOverFull": round(month["durationMs"] / full["durationMs"], 3), "monthCommands": month["commandsTotal"],
        "rejectedOutstanding": with_rejections["stats"]["errors"],
        "resyncWithRejectedOverFull": round(resync_rejected["durationMs"] / full["durationMs"], 3),
        "resyncWithRejectedCommands": resync_rejected["commandsTotal"],
        "reads": {name: {"commands": read["commands"], "ms": round(read["seconds"] * 1000, 1)}
                  for name, read in books.items()},
        "agingOpenDocuments": books["aging"]["openDocuments"],
        "exportBytes": export["bytes"], "exportPeakRssMb": round(export["peakRssMb"], 1),
    }


CHANGE_FIGURES = ("fixOverResync", "fixCommands", "monthShare", "monthOverFull", "monthCommands",
                  "rejectedOutstanding", "resyncWithRejectedOverFull", "resyncWithRejectedCommands", "reads",
                  "agingOpenDocuments", "exportBytes", "exportPeakRssMb")


def measure_nightly(client: MongoClient, env: dict, vendors: int, changed: int) -> dict:
    """The nightly over `vendors` small vendors twice: with none changed (all it costs is what the
    unchanged ones cost), then with `changed` of them changed."""
    from flows.settings import Settings
    from ledger.store import Store

    name = "bench_nightly"
    env = {**env, "MONGODB_DB": name}
    store = Store(client[name], Settings(mongodb_uri="unused", mongodb_db=name).collections)
    store.ensure_indexes()
    every = nightly.generate_vendors(store, vendors)
    idle = nightly.run_nightly(env)
    nightly.change(store, every[::max(1, vendors // changed)][:changed])
    busy = nightly.run_nightly(env)
    client.drop_database(name)
    assert idle["selected"] == 0 and busy["selected"] == changed, (idle["selected"], busy["selected"])
    return {"vendors": vendors, "changed": changed, "idleSeconds": round(idle["wallSeconds"], 2),
            "wallSeconds": round(busy["wallSeconds"], 2),
            "unchangedShare": round(idle["wallSeconds"] / busy["wallSeconds"], 3),
            "selectionSeconds": round(busy["selectionSeconds"], 3), "selectionCommands": busy["selectionCommands"],
            "completed": sum(state == "completed" for state in busy["outcome"].values())}


def summarize(runs: list[dict]) -> dict:
    """A size's row: its median repetition by sync ÷ floor (and the range), the re-sync ratio's median."""
    ordered = sorted(runs, key=lambda run: run["syncOverFloor"])
    median = ordered[(len(runs) - 1) // 2]
    documents = median["documents"]
    return {
        "documents": documents, "entries": median["entries"], "repetitions": len(runs),
        "syncOverFloor": median["syncOverFloor"],
        "syncOverFloorRange": [ordered[0]["syncOverFloor"], ordered[-1]["syncOverFloor"]],
        "commandsPer1000Full": round(sum(median["fullCommands"].values()) * 1000 / documents, 2),
        "commandsIncrementalNoChange": sum(median["resyncCommands"].values()),
        "resyncOverFull": round(statistics.median(run["resyncOverFull"] for run in runs), 3),
        "peakRssMb": max(run["peakRssMb"] for run in runs),
        "documentsPerSecond": round(documents / median["fullSyncSeconds"], 1),
        **{name: median[name] for name in CHANGE_FIGURES},
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000, help="N source documents (4N is measured too)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements at N (one at 4N): the median is shown")
    parser.add_argument("--parts", default="sync,nightly,socket,watcher,cli",
                        help="comma-separated parts to measure (default all): sync, nightly, socket, watcher, cli")
    parser.add_argument("--vendors", type=int, default=1000, help="small vendors in the nightly figure")
    parser.add_argument("--changed", type=int, default=50, help="of them changed since the last nightly")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "ERROR", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1", "PREFECT_LOGGING_TO_API_ENABLED": "false", "LEDGER_INCREMENTAL_OVERLAP_SECONDS": "0"}
    with EmbeddedDatabase(work / "db") as database:
        env["MONGODB_URI"] = database.uri
        prefect, env["PREFECT_API_URL"] = start_prefect(work / "prefect", env)
        result: dict = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cores": os.cpu_count(),
                        "memoryGb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                        "python": platform.python_version()}}
        try:
            client = MongoClient(database.uri, tz_aware=True)
            if "sync" in parts:
                rows = [summarize([measure_size(client, env, size, repetition) for repetition in range(repeat)])
                        for size, repeat in ((args.size, max(1, args.repeat)), (args.size * 4, 1))]
                result.update(rows=rows, rssGrowth4N=round(rows[1]["peakRssMb"] / rows[0]["peakRssMb"], 3))
            if "watcher" in parts:
                from bench import watcher

                result["watcher"] = watcher.measure(env, database.uri, "bench_watch", work / "watch")
            if "nightly" in parts:
                result["nightly"] = measure_nightly(client, env, args.vendors, args.changed)
            if "cli" in parts:
                from bench import cli_sync

                result["cli"] = cli_sync.measure(database.uri, work / "cli")
        finally:
            prefect.terminate()
            prefect.wait(30)
        if "socket" in parts:
            from bench.socket_latency import measure

            sockets = measure(database.uri, "bench", work / "stack", args.size // 4, load_documents)
            result["socket"] = {"documents": args.size // 4, **sockets}
    every = {"sync", "nightly", "socket", "watcher", "cli"}
    (RESULTS / ("latest.json" if parts >= every else "partial.json")).write_text(json.dumps(result, indent=2))
    print(render(result))


def render(result: dict) -> str:
    lines = [f"Ledger Sync benchmark — {result['date']} — {result['machine']['cores']} cores, "
             f"{result['machine']['memoryGb']} GiB, Python {result['machine']['python']}", "",
             "| documents | entries | sync ÷ floor (median, range) | commands / 1,000 docs (full) "
             "| commands, no-change re-sync | re-sync ÷ full | peak RSS MB | docs/s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result.get("rows", []):
        low, high = row["syncOverFloorRange"]
        spread = f" ({low}–{high}, {row['repetitions']} runs)" if row["repetitions"] > 1 else " (1 run)"
        lines.append(f"| {row['documents']:,} | {row['entries']:,} | {row['syncOverFloor']}{spread} | "
                     f"{row['commandsPer1000Full']} | {row['commandsIncrementalNoChange']} | {row['resyncOverFull']} | "
                     f"{row['peakRssMb']} | {row['documentsPerSecond']} |")
    if result.get("rows"):
        lines += ["", "| documents | one-document fix ÷ no-change re-sync (commands) "
                  "| one month ÷ full (month's share) | no-change re-sync ÷ full, rejected outstanding (commands) |",
                  "|---:|---:|---:|---:|"]
        for row in result["rows"]:
            lines.append(f"| {row['documents']:,} | {row['fixOverResync']} ({row['fixCommands']}) | "
                         f"{row['monthOverFull']} ({row['monthShare']}) | {row['resyncWithRejectedOverFull']} "
                         f"({row['resyncWithRejectedCommands']}, {row['rejectedOutstanding']} rejected) |")
        small, large = result["rows"]
        lines += ["", f"| read of the books | commands at {small['documents']:,} / {large['documents']:,} "
                  "| ms at N / 4N | time 4N ÷ N |", "|---|---:|---:|---:|"]
        for name, read in small["reads"].items():
            big = large["reads"][name]
            lines.append(f"| {name} | {read['commands']:g} / {big['commands']:g} | {read['ms']} / {big['ms']} | "
                         f"{round(big['ms'] / read['ms'], 2) if read['ms'] else '—'} |")
        opened = (small["agingOpenDocuments"], large["agingOpenDocuments"])
        lines.append(f"Aging adds up the documents open on the day: {opened[0]:,} at N, {opened[1]:,} at 4N "
                     f"({round(opened[1] / opened[0], 2) if opened[0] else '—'}×); per open document "
                     f"{round(small['reads']['aging']['ms'] / max(opened[0], 1), 3)} ms at N, "
                     f"{round(large['reads']['aging']['ms'] / max(opened[1], 1), 3)} ms at 4N")
        growth = round(large["exportPeakRssMb"] / small["exportPeakRssMb"], 2)
        lines.append(f"Export (Beancount, streamed): peak RSS {small['exportPeakRssMb']} MB at N, "
                     f"{large['exportPeakRssMb']} MB at 4N ({growth}), {small['exportBytes']:,} and "
                     f"{large['exportBytes']:,} bytes")
    lines.append("")
    if "rssGrowth4N" in result:
        lines.append(f"Peak RSS at 4N ÷ at N: {result['rssGrowth4N']}")
    if "socket" in result:
        socket = result["socket"]
        lines.append(f"Socket.IO during a sync of {socket['documents']:,} documents: {socket['events']} progress "
                     f"events, {socket['eventsPerSecond']}/s to the room; emit-to-client p50 "
                     f"{socket['emitToClientP50Ms']} ms, p95 {socket['emitToClientP95Ms']} ms")
    if "watcher" in result:
        live = result["watcher"]
        lines.append(f"Watcher: change-to-entry latency over {live['singleChanges']} single changes p50 "
                     f"{live['latencyP50Seconds']} s, p95 {live['latencyP95Seconds']} s; a burst of {live['burst']:,} "
                     f"new documents posted {live['burstPostedSeconds']} s after its first write "
                     f"({live['burstChangesPerSecond']} documents/s; writing it took {live['burstWriteSeconds']} s)")
    if "nightly" in result:
        n = result["nightly"]
        lines.append(f"Nightly over {n['vendors']:,} small vendors, {n['changed']} changed: {n['wallSeconds']} s "
                     f"({n['completed']} completed); with none changed {n['idleSeconds']} s, so the unchanged ones are "
                     f"at most {n['unchangedShare']:.1%} of it; selection {n['selectionCommands']} commands, "
                     f"{n['selectionSeconds']} s")
    if "cli" in result:
        from bench import cli_sync

        lines.append(cli_sync.render(result["cli"]))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
