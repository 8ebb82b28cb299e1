"""How many acknowledged writes survive `kill -9` of the embedded database, and what durability costs.

    .venv/bin/python -m tests.durability_probe --trials 5 --documents 3000

Each trial starts SecantusDB on a fresh storage directory, lets a writer process insert documents one by
one (each `insert_one` acknowledged before the next, its `_id` printed once acknowledged), kills the server
with SIGKILL part-way, restarts it on the same directory and counts the acknowledged `_id`s that are gone.
Modes: `default` (the server as it ships), `journal` (the client asks `writeConcern {j: true}` through the
URI's `journal=true`), `sync-on-commit` (the server fsyncs every commit), `both` (what the embedded default
runs).
Then it measures, in interleaved rounds (median), writes/s for each mode: `insert_one` one by one,
`update_one`, `insert_many` of 1,000 and a sync-like batch (`insert_many` of 1,000 entries plus two
run-record updates). Not collected by pytest: it takes minutes; `tests/test_embedded_durability.py` is the
quick check.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pymongo import MongoClient

from cli.embedded_db import free_port, wait_until_up

BASE_DIR: str | None = None  # where the storage directories go (--dir): the disk decides what fsync costs
MODES = {
    "default": ([], ""),
    "journal": ([], "?journal=true"),
    "sync-on-commit": (["--sync-on-commit"], ""),
    "both": (["--sync-on-commit"], "?journal=true"),  # what cli/embedded_db.py runs
}


def start_server(storage: Path, port: int, flags: list[str]) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port),
                                "--storage-path", str(storage), "--log-level", "WARNING", *flags],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_until_up(f"mongodb://127.0.0.1:{port}/")
    return process


def writer(uri: str, count: int) -> None:
    """In the writer process: insert 0..count-1, printing each `_id` once the server acknowledged it."""
    with MongoClient(uri, serverSelectionTimeoutMS=2000, socketTimeoutMS=2000, retryWrites=False) as client:
        collection = client.probe.acked
        for number in range(count):
            try:
                collection.insert_one({"_id": number, "payload": "x" * 200})
            except Exception:  # noqa: BLE001 - the server was killed: stop
                return
            print(number, flush=True)


def trial(mode: str, documents: int, rng: random.Random) -> tuple[int, int]:
    """One kill -9 trial: (acknowledged, lost)."""
    flags, options = MODES[mode]
    with tempfile.TemporaryDirectory(prefix="durability-", dir=BASE_DIR) as directory:
        storage, port = Path(directory) / "db", free_port()
        server = start_server(storage, port, flags)
        uri = f"mongodb://127.0.0.1:{port}/{options}"
        child = subprocess.Popen([sys.executable, "-m", "tests.durability_probe", "--writer", uri, "--documents",
                                  str(documents)], stdout=subprocess.PIPE, text=True)
        kill_after = rng.randint(documents // 3, 2 * documents // 3)
        acked: list[int] = []
        for line in child.stdout:
            acked.append(int(line))
            if len(acked) == kill_after:
                os.kill(server.pid, signal.SIGKILL)
                break
        acked.extend(int(line) for line in child.stdout)  # what was acknowledged before the kill landed
        child.wait(30)
        server.wait(10)
        server = start_server(storage, port, flags)
        try:
            with MongoClient(f"mongodb://127.0.0.1:{port}/") as client:
                present = {d["_id"] for d in client.probe.acked.find({}, {"_id": 1})}
        finally:
            server.terminate()
            server.wait(10)
        return len(acked), len(set(acked) - present)


def rate(mode: str, documents: int, batch: int, update: bool = False, checkpoints: int = 0) -> float:
    """Writes per second in this mode: inserts of `batch` documents per call (each followed by `checkpoints`
    single-document updates, as a sync's batch is), or single-document updates alone."""
    flags, options = MODES[mode]
    with tempfile.TemporaryDirectory(prefix="durability-", dir=BASE_DIR) as directory:
        port = free_port()
        server = start_server(Path(directory) / "db", port, flags)
        try:
            with MongoClient(f"mongodb://127.0.0.1:{port}/{options}") as client:
                collection = client.probe.rate
                if update:
                    collection.insert_one({"_id": "run", "n": 0})
                    started = time.perf_counter()
                    for _ in range(documents):
                        collection.update_one({"_id": "run"}, {"$inc": {"n": 1}})
                    return documents / (time.perf_counter() - started)
                started = time.perf_counter()
                for first in range(0, documents, batch):
                    rows = [{"_id": n, "payload": "x" * 200} for n in range(first, min(first + batch, documents))]
                    if batch == 1:
                        collection.insert_one(rows[0])
                    else:
                        collection.insert_many(rows)
                    for _ in range(checkpoints):
                        client.probe.runs.update_one({"_id": "run"}, {"$set": {"lastId": first}}, upsert=True)
                return documents / (time.perf_counter() - started)
        finally:
            server.terminate()
            server.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writer", metavar="URI", help=argparse.SUPPRESS)
    parser.add_argument("--documents", type=int, default=3000)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--dir", help="make the storage directories here (default: the system temp dir)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the write-rate measurement")
    args = parser.parse_args()
    if args.writer:
        writer(args.writer, args.documents)
        return 0
    global BASE_DIR
    BASE_DIR = args.dir
    rng = random.Random(args.seed)
    for mode in args.modes.split(","):
        results = [trial(mode, args.documents, rng) for _ in range(args.trials)]
        lost = sum(r[1] for r in results)
        print(f"{mode:15} kill -9: lost {lost} of {sum(r[0] for r in results)} acknowledged "
              f"({', '.join(f'{r[1]}/{r[0]}' for r in results)})", flush=True)
    # Interleaved rounds, the median of each: the machine is shared, one round alone says little.
    workloads = {"insert_one/s": lambda m: rate(m, 2000, 1), "update_one/s": lambda m: rate(m, 2000, 1, update=True),
                 "insert_many(1000) docs/s": lambda m: rate(m, 20000, 1000),
                 "sync-like docs/s": lambda m: rate(m, 20000, 1000, checkpoints=2)}
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for mode in args.modes.split(","):
            for name, workload in workloads.items():
                samples.setdefault((mode, name), []).append(workload(mode))
    for mode in args.modes.split(","):
        print(f"{mode:15} " + "   ".join(f"{name} {statistics.median(samples[mode, name]):6.0f}" for name in workloads)
              + f"   (median of {args.rounds})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
