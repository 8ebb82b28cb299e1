"""The nightly fan-out on the production shape: a Prefect server on PostgreSQL, the deployments
created from prefect.yaml with the real `prefect --no-prompt deploy --all`, and process workers
(`prefect worker start --pool ledger-sync`) running the runs, over 10 vendors.

Checked: every vendor's run completed with the books an in-memory posting of its documents gives,
one run per vendor (even when the nightly deployment is triggered twice at once: its concurrency
limit cancels the second), and no vendor ever had two runs at the same time. Measured (printed,
not asserted): the fan-out's wall time with one worker and with two.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from pymongo import MongoClient

from cli.demo_data import load
from cli.stack import PROJECT_DIR, QUIET_PREFECT, ManagedProcess, spawn, start_prefect_server
from ledger.batch import plan_batch
from ledger.clock import utc_now
from ledger.kinds import kinds
from ledger.sync_run import SyncParameters
from ledger.verification import balances_of

pytestmark = pytest.mark.scaleout

VENDORS = 10
DOCUMENTS = 60  # per vendor, plus the demo set's 4 broken ones
POOL = "ledger-sync"  # prefect.yaml's pool, on this test's own Prefect server
NIGHTLY = "sync-all-vendors/nightly"
RUN_TIMEOUT = 300


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _psql(sql: str) -> subprocess.CompletedProcess:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], capture_output=True, text=True)


@pytest.fixture(scope="module")
def postgres_database():
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            pass
    except OSError:
        pytest.skip("needs PostgreSQL on 127.0.0.1:5432 (.ci/run starts it)")
    name = f"prefect_fanout_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    created = _psql(f"CREATE DATABASE {name}")
    assert created.returncode == 0, created.stderr
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def fanout_env(mongo_uri, tmp_path_factory):
    home = tmp_path_factory.mktemp("fanout-home")
    env = {**os.environ, **QUIET_PREFECT, "MONGODB_URI": mongo_uri, "LEDGER_HOME": str(home),
           "PREFECT_LOGGING_TO_API_ENABLED": "false", "PYTHONUNBUFFERED": "1", "PREFECT_HOME": str(home / "prefect"),
           # Scheduled runs must not fire during the test; the deployments are triggered by hand.
           "LEDGER_SCHEDULES_ACTIVE": "false",
           # Every vendor in a flow run of its own: this test is about workers sharing those runs.
           "LEDGER_OWN_FLOW_RUN_ABOVE_DOCUMENTS": "0"}
    for variable in ("MONGODB_DB", "PREFECT_API_URL", "LEDGER_NIGHTLY_CRON", "LEDGER_WEEKLY_CRON",
                     "LEDGER_SCHEDULE_TIMEZONE", "LEDGER_PROJECT_DIR"):
        env.pop(variable, None)
    return env


@pytest.fixture(scope="module")
def prefect_on_postgres(postgres_database, fanout_env, tmp_path_factory):
    """A Prefect server on a fresh PostgreSQL database, with the process pool and prefect.yaml deployed."""
    home = tmp_path_factory.mktemp("fanout-prefect")
    process, api_url = start_prefect_server(home, _free_port(), fanout_env, home / "logs",
                                            database_url=postgres_database)
    try:
        env = {**fanout_env, "PREFECT_API_URL": api_url}
        prefect = [sys.executable, "-m", "prefect"]
        for argv in ([*prefect, "work-pool", "create", POOL, "--type", "process"],
                     [*prefect, "--no-prompt", "deploy", "--all"]):
            done = subprocess.run(argv, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, f"{' '.join(argv[2:])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        yield api_url
    finally:
        process.stop()


def test_prefect_yaml_deploys_every_deployment(prefect_on_postgres):
    deployments = {d.name: d for d in _read_deployments(prefect_on_postgres)}
    assert {name: d.entrypoint for name, d in deployments.items()} == {
        "on-demand": "flows/sync_vendor.py:sync_vendor_ledger", "nightly": "flows/nightly.py:sync_all_vendors",
        "weekly-full": "flows/nightly.py:sync_all_vendors", "continuous": "flows/watch.py:watch_sources"}
    nightly, weekly = deployments["nightly"], deployments["weekly-full"]
    assert nightly.parameters == {"full": False} and weekly.parameters == {"full": True}
    def schedules(deployment):
        return [(s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules]

    assert schedules(nightly) == [("0 2 * * *", "UTC", False)]
    assert schedules(weekly) == [("0 3 * * 0", "UTC", False)]
    for deployment in deployments.values():
        assert deployment.work_pool_name == POOL
        assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {
            "directory": str(PROJECT_DIR)}}]  # offline: the checkout, no git clone


def _read_deployments(api_url: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return client.read_deployments()


def _start_workers(count: int, env: dict[str, str], log_dir: Path) -> list[ManagedProcess]:
    workers = []
    for number in range(count):
        worker_env = {**env, "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_LOGGING_LEVEL": "INFO"}
        workers.append(spawn(f"worker-{number}", [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL,
                                                  "--name", f"worker-{number}", "--type", "process"],
                             worker_env, log_dir, stop_timeout=5))  # a worker ignores the first SIGTERM: then KILL
    return workers


def _wait_workers_online(api_url: str, count: int, workers: list[ManagedProcess], timeout: float = 60) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + timeout
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        while True:
            for worker in workers:
                assert worker.alive, f"{worker.name} exited:\n{worker.tail()}"
            online = [w for w in client.read_workers_for_work_pool(POOL)
                      if w.name.startswith("worker-") and str(w.status).upper().endswith("ONLINE")]
            if len({w.name for w in online} & {w.name for w in workers}) >= count:
                return
            assert time.monotonic() < deadline, "the workers never came online"
            time.sleep(0.5)


def _run_nightly(api_url: str, triggers: int = 1) -> tuple[list, float]:
    """Trigger the nightly deployment (`triggers` times at once) and wait until every run is final."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        started = time.monotonic()
        ids = [run_deployment(NIGHTLY, timeout=0, as_subflow=False).id for _ in range(triggers)]
        deadline = started + RUN_TIMEOUT
        while True:
            runs = [client.read_flow_run(flow_run_id) for flow_run_id in ids]
            if all(run.state is not None and run.state.is_final() for run in runs):
                return runs, time.monotonic() - started
            assert time.monotonic() < deadline, f"the fan-out did not finish: {[r.state for r in runs]}"
            time.sleep(0.25)


def _expected_net_balances(database, vendor_id: str) -> dict:
    """A fresh in-memory posting of the vendor's documents (SPEC §3 via the pure domain code)."""
    entries = []
    for kind in kinds():
        documents = list(database[kind.collection].find({"vendorId": vendor_id}))
        plan = plan_batch(kind, documents, [], SyncParameters(), "INR", utc_now())
        entries.extend(plan.entries)
    return balances_of(entries).net_balances()


def _check_books_and_runs(mongo_uri: str, database_name: str, vendors: list[str],
                          max_parallel: int) -> tuple[int, float]:
    """Returns the peak number of vendors syncing at once and the mean vendor run (record) duration."""
    from flows.database import reset_clients
    from flows.settings import Settings
    from ledger.store import Store

    with MongoClient(mongo_uri, tz_aware=True) as client:
        database = client[database_name]
        store = Store(database, Settings(mongodb_uri=mongo_uri, mongodb_db=database_name).collections)
        intervals = []
        for vendor in vendors:
            runs = sorted(database.ledger_sync_runs.find({"vendorId": vendor}), key=lambda r: r["startedAt"])
            assert len(runs) == 1, f"{vendor}: {[(r['syncId'], r['state']) for r in runs]}"
            run = runs[0]
            assert run["state"] == "completed", (vendor, run["state"], run.get("error"))
            assert run["parameters"]["full"] is False
            assert run["verification"]["ok"] and run["verification"]["balanced"], (vendor, run["verification"])
            assert run["stats"]["total"]["errors"] == 4  # the demo set's broken documents, rejected
            assert store.entries.balances(vendor).net_balances() == _expected_net_balances(database, vendor), vendor
            for earlier, later in itertools.pairwise(runs):
                assert earlier["endedAt"] <= later["startedAt"], f"{vendor} ran twice at the same time"
            intervals.append((run["startedAt"], run["endedAt"]))
        # The fan-out keeps at most max_parallel vendors going at once.
        points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                        key=lambda p: (p[0], p[1]))
        running = peak = 0
        for _, change in points:
            running += change
            peak = max(peak, running)
        assert 1 <= peak <= max_parallel, peak
    reset_clients()
    return peak, sum((end - start).total_seconds() for start, end in intervals) / len(intervals)


def _submissions(workers: list[ManagedProcess]) -> dict[str, int]:
    return {w.name: w.tail(100000).count("ubmitting flow run") for w in workers}


@pytest.mark.timeout(420)
# Two workers share the runs (one worker is the same code path, and the suite's time is budgeted).
def test_nightly_fan_out_over_process_workers(prefect_on_postgres, fanout_env, mongo_uri, tmp_path):
    worker_count = 2
    database_name = f"fanout_{os.getpid()}_{worker_count}_{uuid.uuid4().hex[:6]}"
    vendors = [f"fan{n:02d}" for n in range(VENDORS)]
    with MongoClient(mongo_uri) as client:
        load(client[database_name], vendors, documents=DOCUMENTS)
    env = {**fanout_env, "PREFECT_API_URL": prefect_on_postgres, "MONGODB_DB": database_name}
    workers = _start_workers(worker_count, env, tmp_path)
    try:
        _wait_workers_online(prefect_on_postgres, worker_count, workers)
        # With two workers, trigger the nightly twice at once (runs piled up while the server was
        # down do the same): the deployment's concurrency limit cancels the second.
        triggers = 2 if worker_count == 2 else 1
        runs, seconds = _run_nightly(prefect_on_postgres, triggers)
        states = sorted(run.state.name for run in runs)
        if states != (["Cancelled", "Completed"] if triggers == 2 else ["Completed"]):
            with MongoClient(mongo_uri) as client:
                records = [(r["vendorId"], r["state"], r.get("error")) for r in client[database_name].ledger_sync_runs
                           .find({"state": {"$ne": "completed"}})]
            pytest.fail(f"fan-out runs {[(run.state.name, run.state.message) for run in runs]}; vendor runs not "
                        f"completed: {records}\n{workers[0].tail(60)}")
        peak, mean_run = _check_books_and_runs(mongo_uri, database_name, vendors, max_parallel=4)
        print(f"\nMEASURE fan-out of {VENDORS} vendors x {DOCUMENTS + 4} documents with {worker_count} "
              f"process worker(s): {seconds:.1f} s wall (trigger → fan-out flow run final); a vendor's run "
              f"{mean_run:.1f} s on average (opened → settled), at most {peak} at once; "
              f"flow runs submitted per worker: {_submissions(workers)}")
        if worker_count == 2:
            assert sum(_submissions(workers).values()) >= VENDORS + 1, _submissions(workers)
    finally:
        for worker in workers:
            worker.stop()
        with MongoClient(mongo_uri) as client:
            client.drop_database(database_name)
