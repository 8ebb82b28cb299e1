"""The OpenAPI document is the truth: schemathesis, with a valid token, finds no response it does not describe.

It runs the schemathesis CLI (every check, every phase: examples, coverage, fuzzing and the stateful
phase that follows the OpenAPI links from a started sync to its status, cancel and errors) against the
live API of the session, with the real Prefect server and deployment server behind it. Bounded and
deterministic: at most 25 examples per operation, `--generation-deterministic`, no response-time check.
Its POST /sync-data cases really start syncs, so they run as a vendor of their own with no data (each sync
is over in seconds), and whatever is still running at the end is cancelled and waited for.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from tests.api.conftest import bearer, token_for

MAX_EXAMPLES = 25
PROJECT_DIR = Path(__file__).resolve().parents[2]


async def _settle_runs(http, mongo, vendor: str, timeout: float = 60.0) -> None:
    """Cancel the vendor's active runs and wait until none is active, so nothing it started outlives the test."""
    deadline = time.monotonic() + timeout
    while True:
        active = [run["syncId"] for run in mongo.ledger_sync_runs.find({"vendorId": vendor, "active": True})]
        if not active:
            return
        for sync_id in active:
            await http.post(f"/api/ledger/sync-runs/{sync_id}/cancel", headers=bearer(vendor))
        assert time.monotonic() < deadline, f"runs still active after {timeout:.0f}s: {active}"
        await asyncio.sleep(1)


async def test_schemathesis_finds_nothing(api, http, mongo, new_vendor, tmp_path):
    vendor = new_vendor("st")
    report = tmp_path / "schemathesis.json"
    config = Path(__file__).with_name("schemathesis.toml")
    argv = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{api.url}/openapi.json",
            "--header", f"Authorization: Bearer {token_for(vendor)}",
            "--checks", "all",
            "--max-examples", str(MAX_EXAMPLES), "--generation-deterministic",
            "--workers", "1", "--request-timeout", "20",
            "--phases", "examples,coverage,fuzzing,stateful", "--no-color",
            "--report", "json", "--report-json-path", str(report)]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_DIR), os.environ.get("PYTHONPATH")]))}
    started = time.monotonic()
    # In its own directory: the CLI keeps a `.schemathesis/` folder where it runs.
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, cwd=tmp_path,
                                                   stderr=asyncio.subprocess.STDOUT, env=env)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), 240)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await _settle_runs(http, mongo, vendor)
    text = output.decode(errors="replace")
    result = json.loads(report.read_text())
    print(f"schemathesis: {result['test_cases']['generated']} cases over {result['operations']['tested']} "
          f"operations in {time.monotonic() - started:.1f}s")
    assert result["failures"] == [] and result["errors"] == [], text[-6000:]
    assert process.returncode == 0, text[-6000:]
    assert result["operations"]["tested"] == result["operations"]["selected"] >= 9, result["operations"]
    assert result["test_cases"]["generated"] >= 100, result["test_cases"]
