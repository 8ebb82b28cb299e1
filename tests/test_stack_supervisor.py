"""`ledger-sync up` keeps the stack running when one of its children dies (kill -9), and syncs still finish.

One real `ledger-sync up --no-demo` for the module (its own LEDGER_HOME, free ports, the embedded database,
a fresh Prefect server: ~40 s to start), started without `--dev` as a user would run it outside a demo, and
signed into with the generated local secret. Each test kills one child with SIGKILL and checks what a user
would: the child comes back (a new pid, a log line naming it, its exit code and its log), the API answers
/api/health again, and a sync triggered through the API ends `completed`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from api.auth import issue_token
from cli.demo_data import load
from tests.stack import free_port

pytestmark = pytest.mark.scaleout  # about two minutes on 2 cores: a whole stack, started once
PROJECT_DIR = Path(__file__).resolve().parent.parent
DOCUMENTS = 1500  # a sync of this many, 25 per batch, runs long enough to be killed in the middle


class Up:
    """The running `ledger-sync up` process and what it tells the world (stack.json, its output)."""

    def __init__(self, home: Path, port: int, process: subprocess.Popen, output: Path):
        self.home, self.port, self.process, self.output = home, port, process, output
        self.url = f"http://127.0.0.1:{port}"
        self.seen_pids: set[int] = set()

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def children(self) -> dict[str, int]:
        children = json.loads((self.home / "stack.json").read_text())["children"]
        self.seen_pids.update(children.values())
        return children

    def wait(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"`up` exited ({self.process.returncode}):\n{self.text()[-3000:]}"
            try:
                value = predicate()
            except (OSError, ValueError, KeyError, httpx.HTTPError):
                value = None
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.text()[-3000:]}"
            time.sleep(0.25)

    def token(self, vendor: str) -> str:
        return issue_token(vendor, (self.home / "jwt-secret").read_text().strip())

    def database(self):
        uri = json.loads((self.home / "mongo.json").read_text())["uri"]
        return MongoClient(uri, tz_aware=True)

    def healthy(self) -> bool:
        return httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200

    def kill(self, child: str) -> int:
        pid = self.children()[child]
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, child: str, old_pid: int, timeout: float = 90) -> int:
        new_pid = self.wait(lambda: self.children()[child] != old_pid and self.children()[child], timeout,
                            f"{child} to be restarted")
        self.wait(lambda: f"{child} is back" in self.text(), timeout, f"{child} to be healthy again")
        assert f"{child} exited with code -9 (SIGKILL)" in self.text()
        assert str(self.home / "logs") in self.text()  # the line says where its log is
        return new_pid

    def start_sync(self, vendor: str) -> str:
        response = httpx.post(f"{self.url}/api/ledger/sync-data", json={},
                              headers={"Authorization": f"Bearer {self.token(vendor)}"}, timeout=30)
        assert response.status_code == 202, response.text
        return response.json()["syncId"]

    def status(self, vendor: str, sync_id: str) -> dict:
        response = httpx.get(f"{self.url}/api/ledger/sync-status/{sync_id}",
                             headers={"Authorization": f"Bearer {self.token(vendor)}"}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_finished(self, vendor: str, sync_id: str, timeout: float = 120) -> dict:
        def finished() -> dict | None:
            run = self.status(vendor, sync_id)
            return run if run["state"] in ("completed", "failed", "crashed", "cancelled") else None

        return self.wait(finished, timeout, f"{sync_id} to finish")


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    home = tmp_path_factory.mktemp("up-home")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("MONGODB_URI", "MONGODB_DB", "PREFECT_API_URL", "LEDGER_JWT_SECRET", "LEDGER_ENV",
                        "LEDGER_DEV_ROUTES", "LEDGER_PREFECT_PORT")}
    env.update(LEDGER_HOME=str(home), LEDGER_BATCH_SIZE="25", LEDGER_SCHEDULES_ACTIVE="false",
               PYTHONUNBUFFERED="1", PREFECT_LOGGING_TO_API_ENABLED="false")
    output = home / "up.out"
    with open(output, "wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "cli.main", "up", "--no-demo", "--port", str(port),
                                    "--prefect-port", str(free_port())],
                                   env=env, cwd=PROJECT_DIR, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    stack = Up(home, port, process, output)
    try:
        stack.wait(lambda: "Press Ctrl-C to stop." in stack.text() and stack.children(), 180, "`up` to start")
        yield stack
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        for pid in stack.seen_pids:  # never leave a child behind, whatever a test did
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not running
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _in_groups(groups: set[int]) -> list[int]:
    """Running processes whose process group is one of `groups` (a child's session: what it started too,
    such as the flow runs a killed deployment server left running)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) in groups:
            members.append(int(stat.parent.name))
    return members


def test_without_dev_the_dev_routes_are_off_and_the_printed_token_signs_in(up):
    assert httpx.get(f"{up.url}/api/dev/token", params={"vendor": "anyone"}, timeout=5).status_code == 404
    assert "WARNING" not in up.text() and f"Sign in      {up.url}/?token=" in up.text()
    printed = up.text().split("Token        ", 1)[1].split()[0]
    response = httpx.get(f"{up.url}/api/ledger/sync-runs", headers={"Authorization": f"Bearer {printed}"}, timeout=5)
    assert response.status_code == 200, response.text
    assert set(up.children()) == {"database", "prefect-server", "deployment-server", "api"}


def test_a_killed_deployment_server_is_restarted_and_the_sync_it_was_running_finishes(up):
    """Its flow run dies at its next log line (its output was a pipe to the dead server): `up` resumes it
    from its last checkpoint once the server is back, so the same syncId ends completed."""
    with up.database() as client:
        load(client["ledger_sync"], ["kill-serve"], documents=DOCUMENTS)
        load(client["ledger_sync"], ["after-serve"], documents=50)
    sync_id = up.start_sync("kill-serve")

    def running() -> bool:
        run = up.status("kill-serve", sync_id)
        return run["state"] == "running" and run["progress"]["processed"] > 0

    up.wait(running, 60, "the sync to be running")
    old = up.kill("deployment-server")
    killed_at = time.monotonic()
    new = up.wait_restarted("deployment-server", old)
    print(f"\nMEASURE deployment server back {time.monotonic() - killed_at:.1f}s after kill -9")
    run = up.wait_finished("kill-serve", sync_id)
    assert run["state"] == "completed", run
    assert run["stats"]["total"]["scanned"] >= DOCUMENTS and run["stats"]["total"]["synced"] > 0
    if run["attempts"] > 1:  # it crashed and was resumed (not if it finished before writing a line)
        assert f"sync {sync_id}: crashed with the deployment server; resumed" in up.text()
    assert up.healthy()
    # The restarted server takes new runs.
    after = up.wait_finished("after-serve", up.start_sync("after-serve"))
    assert after["state"] == "completed", after
    assert up.children()["deployment-server"] == new and _alive(new)


def test_a_killed_api_is_restarted_and_answers_again(up):
    with up.database() as client:
        load(client["ledger_sync"], ["kill-api"], documents=50)
    others = {name: pid for name, pid in up.children().items() if name != "api"}
    old = up.kill("api")
    killed_at = time.monotonic()
    up.wait_restarted("api", old)
    up.wait(up.healthy, 30, "/api/health to answer 200")
    print(f"\nMEASURE API healthy again {time.monotonic() - killed_at:.1f}s after kill -9")
    assert {name: pid for name, pid in up.children().items() if name != "api"} == others  # the rest kept running
    run = up.wait_finished("kill-api", up.start_sync("kill-api"))
    assert run["state"] == "completed", run


def test_a_killed_database_comes_back_on_its_port_with_its_data(up):
    uri = json.loads((up.home / "mongo.json").read_text())["uri"]
    with up.database() as client:
        before = client["ledger_sync"].salesinvoices.count_documents({})
    old = up.kill("database")
    up.wait_restarted("database", old, timeout=60)
    state = json.loads((up.home / "mongo.json").read_text())
    assert state["uri"] == uri and state["pid"] == up.children()["database"] != old
    with up.database() as client:
        assert client["ledger_sync"].salesinvoices.count_documents({}) == before > 0
    up.wait(up.healthy, 60, "/api/health to answer 200 with the database back")
    with up.database() as client:
        load(client["ledger_sync"], ["kill-db"], documents=50)
    run = up.wait_finished("kill-db", up.start_sync("kill-db"))
    assert run["state"] == "completed", run


def test_stopping_up_stops_every_child_it_ever_started(up):
    up.children()
    os.killpg(up.process.pid, signal.SIGTERM)
    assert up.process.wait(90) == 0, up.text()[-3000:]
    deadline = time.monotonic() + 10
    while _in_groups(up.seen_pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in up.seen_pids if _alive(pid)] == [] and _in_groups(up.seen_pids) == [], up.text()[-3000:]
    assert not (up.home / "stack.json").exists() and "Stopped." in up.text()
