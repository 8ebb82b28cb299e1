"""`make bench` part `cli`: `ledger-sync sync` of a small (demo-sized) vendor, cold and warm (SPEC §10).

The command runs as a user runs it, without a stack, so it uses its home's background Prefect server
(cli/prefect_background.py): *cold* has none running (the first sync of a fresh home, and one after the server
stopped), *warm* finds it running. Each sync is the first of a vendor of its own, so each does the same work.
Measured from the command's start: the first progress (its run turns `running`, what the progress bar and the
vendor's room show first), the wall time, and wall ÷ the flow's own duration (its first step's start to its end).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient

from cli import prefect_background
from cli.demo_data import load

ROOT = Path(__file__).resolve().parent.parent
WARM_RUNS = 3


def timed_sync(env: dict, cwd: Path, db, vendor: str) -> dict:
    runs = db.ledger_sync_runs
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "cli.main", "sync", "--vendor", vendor, "--json"], env=env,
                               cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_progress = None
    while process.poll() is None:
        if first_progress is None and runs.find_one({"vendorId": vendor, "state": "running"}, {"_id": 1}):
            first_progress = time.perf_counter() - started
        time.sleep(0.02)
    wall = time.perf_counter() - started
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the CLI sync of {vendor} failed:\n{err[-3000:]}")
    summary = json.loads(out)
    record = runs.find_one({"_id": summary["syncId"]})
    first_step = min(step["startedAt"] for step in record["steps"].values() if step.get("startedAt"))
    flow_seconds = (record["endedAt"] - first_step).total_seconds()
    return {"firstProgressSeconds": round(first_progress or wall, 2), "wallSeconds": round(wall, 2),
            "flowSeconds": round(flow_seconds, 2), "wallOverFlow": round(wall / flow_seconds, 2)}


def measure(uri: str, work: Path, documents: int = 400) -> dict:
    """Cold (fresh home), warm (median of three), cold again (the home's server stopped)."""
    name = "bench_cli"
    home = work / ".ledger-sync"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(MONGODB_URI=uri, MONGODB_DB=name, LEDGER_HOME=str(home), LEDGER_PREFECT_IDLE_STOP_SECONDS="600")
    work.mkdir(parents=True, exist_ok=True)
    client: MongoClient = MongoClient(uri, tz_aware=True)
    vendors = [f"cli-{n}" for n in range(WARM_RUNS + 2)]
    load(client[name], vendors, documents=documents)
    try:
        cold = timed_sync(env, work, client[name], vendors[0])
        warm = [timed_sync(env, work, client[name], vendor) for vendor in vendors[1:-1]]
        prefect_background.stop(home)
        cold_again = timed_sync(env, work, client[name], vendors[-1])
    finally:
        prefect_background.stop(home)
        client.drop_database(name)
        client.close()
    middle = sorted(warm, key=lambda run: run["firstProgressSeconds"])[len(warm) // 2]
    return {"documents": documents, "cold": cold, "coldExistingHome": cold_again, "warm": middle,
            "warmFirstProgressRange": [min(run["firstProgressSeconds"] for run in warm),
                                       max(run["firstProgressSeconds"] for run in warm)],
            "warmWallOverFlowMedian": statistics.median(run["wallOverFlow"] for run in warm)}


def render(figures: dict) -> str:
    cold, again, warm = figures["cold"], figures["coldExistingHome"], figures["warm"]
    low, high = figures["warmFirstProgressRange"]
    return (f"CLI sync of a {figures['documents']}-document vendor: first progress cold "
            f"{cold['firstProgressSeconds']} s "
            f"(server stopped, home kept: {again['firstProgressSeconds']} s), warm {warm['firstProgressSeconds']} s "
            f"({low}–{high}, {WARM_RUNS} runs); wall ÷ the flow's own duration cold {cold['wallOverFlow']} "
            f"({again['wallOverFlow']}), warm {figures['warmWallOverFlowMedian']} (warm wall {warm['wallSeconds']} s, "
            f"flow {warm['flowSeconds']} s)")

