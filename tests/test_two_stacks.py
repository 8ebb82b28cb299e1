"""Two `ledger-sync up` on one machine, each with its own LEDGER_HOME: both start, each serves its own API,
Prefect server and database, each syncs a vendor, and stopping one leaves the other running (SPEC §10).

Both stacks get free ports given explicitly: the defaults (4000, 4200) are not ours to take on a shared
machine; replacing a taken default is `choose_port`'s test in tests/test_cli_arguments.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys

import httpx
import pytest

from cli.demo_data import load
from tests.stack import free_port
from tests.test_stack_supervisor import PROJECT_DIR, Up

pytestmark = pytest.mark.scaleout  # two whole stacks at once: about a minute on 2 cores


def _start(home, port: int, prefect_port: int) -> Up:
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("MONGODB_URI", "MONGODB_DB", "PREFECT_API_URL", "LEDGER_JWT_SECRET", "LEDGER_ENV",
                        "LEDGER_DEV_ROUTES", "LEDGER_PREFECT_PORT")}
    env.update(LEDGER_HOME=str(home), LEDGER_SCHEDULES_ACTIVE="false", PYTHONUNBUFFERED="1",
               PREFECT_LOGGING_TO_API_ENABLED="false")
    output = home / "up.out"
    with open(output, "wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "cli.main", "up", "--no-demo", "--port", str(port),
                                    "--prefect-port", str(prefect_port)], env=env, cwd=PROJECT_DIR, stdout=sink,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    return Up(home, port, process, output)


def _stop(stack: Up) -> None:
    if stack.process.poll() is None:
        os.killpg(stack.process.pid, signal.SIGTERM)
        try:
            stack.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(stack.process.pid, signal.SIGKILL)
            stack.process.wait(10)
    for pid in stack.seen_pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def test_two_stacks_with_their_own_homes_run_side_by_side(tmp_path):
    stacks = [_start(tmp_path / name, free_port(), free_port()) for name in ("first", "second")]
    try:
        for stack in stacks:
            stack.wait(lambda stack=stack: "Press Ctrl-C to stop." in stack.text() and stack.children(), 180,
                       "`up` to start")
        states = [json.loads((stack.home / "stack.json").read_text()) for stack in stacks]
        assert states[0]["appUrl"] != states[1]["appUrl"]
        assert states[0]["prefectApiUrl"] != states[1]["prefectApiUrl"]
        for stack, state in zip(stacks, states, strict=True):
            assert f"App          {state['appUrl']}/" in stack.text()
            assert f"Prefect UI   {state['prefectApiUrl'].removesuffix('/api')}" in stack.text()
            assert httpx.get(f"{state['prefectApiUrl']}/health", timeout=10).status_code == 200
            assert stack.healthy()

        for stack, vendor in zip(stacks, ("north", "south"), strict=True):
            with stack.database() as client:
                load(client["ledger_sync"], [vendor], documents=40)
        runs = [(stack, vendor, stack.start_sync(vendor)) for stack, vendor in zip(stacks, ("north", "south"),
                                                                                     strict=True)]
        for stack, vendor, sync_id in runs:
            run = stack.wait_finished(vendor, sync_id)
            assert run["state"] == "completed" and run["stats"]["total"]["synced"] > 0, run
        with stacks[0].database() as client:  # each its own database: nothing of the other's vendor
            assert client["ledger_sync"].salesinvoices.count_documents({"vendorId": "south"}) == 0

        _stop(stacks[0])
        assert stacks[0].process.returncode == 0 and "Stopped." in stacks[0].text()
        assert stacks[1].healthy()  # the other one runs on
        assert httpx.get(f"{states[1]['prefectApiUrl']}/health", timeout=10).status_code == 200
    finally:
        for stack in stacks:
            _stop(stack)
