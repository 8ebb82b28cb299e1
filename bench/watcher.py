"""The continuous sync: change-to-entry latency over single-document changes, and throughput under a
burst, with the real watcher (`ledger-sync watch`) in its own process, as `up --watch` runs it."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

from pymongo import MongoClient

from cli.demo_data import generate
from ledger.kinds import kinds

SINGLE_CHANGES = 40
BURST = 5000


def _posted_documents(db, vendor_id: str) -> int:
    """Source documents with at least one entry (payments are entries of their invoice's document)."""
    return len(db.ledger_entries.distinct("source.id", {"vendorId": vendor_id,
                                                        "source.type": {"$in": [kind.type for kind in kinds()]}}))


def _postable(vendor_id: str, count: int, seed: int) -> list[tuple[str, dict]]:
    """`count` generated documents that post at least one entry (no drafts, nothing withdrawn)."""
    documents = ((collection, document) for collection, document in generate(vendor_id, 4 * count, seed=seed,
                                                                            broken=False)
                 if document.get("status") not in ("draft", "void", "cancelled") and not document.get("isDeleted"))
    return list(islice(documents, count))


def _wait_posted(db, vendor_id: str, count: int, timeout: float) -> float:
    started = time.monotonic()
    while _posted_documents(db, vendor_id) < count:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the watcher posted {_posted_documents(db, vendor_id)} of {count} documents "
                               f"within {timeout:.0f} s")
        time.sleep(0.02)
    return time.monotonic()


def measure(env: dict, uri: str, name: str, log_dir: Path) -> dict:
    db = MongoClient(uri, tz_aware=True)[name]
    env = {**env, "MONGODB_DB": name}
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "watcher.log", "ab") as log:
        watcher = subprocess.Popen([sys.executable, "-m", "cli.main", "watch", "--window", "0.1"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while db.ledger_watch_state.find_one({"aliveAt": {"$exists": True}}) is None:
            if time.monotonic() > deadline or watcher.poll() is not None:
                raise RuntimeError(f"the watcher did not start (log: {log_dir / 'watcher.log'})")
            time.sleep(0.2)
        latencies = []
        for posted, (collection, document) in enumerate(_postable("live-single", SINGLE_CHANGES, 5), start=1):
            changed_at = time.monotonic()
            db[collection].insert_one(document)
            latencies.append(_wait_posted(db, "live-single", posted, 60) - changed_at)
            time.sleep(0.2)  # one change at a time, as a user's app writes them
        burst: dict[str, list[dict]] = {}
        for collection, document in _postable("live-burst", BURST, 6):
            burst.setdefault(collection, []).append(document)
        started = time.monotonic()
        for collection, documents in burst.items():
            for first in range(0, len(documents), 500):
                db[collection].insert_many(documents[first:first + 500], ordered=False)
        written = time.monotonic()
        finished = _wait_posted(db, "live-burst", BURST, 900)
    finally:
        watcher.terminate()
        watcher.wait(60)
    ordered = sorted(latencies)
    return {"singleChanges": len(latencies), "latencyP50Seconds": round(statistics.median(ordered), 2),
            "latencyP95Seconds": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
            "burst": BURST, "burstWriteSeconds": round(written - started, 1),
            "burstPostedSeconds": round(finished - started, 1),
            "burstChangesPerSecond": round(BURST / (finished - started), 1)}
