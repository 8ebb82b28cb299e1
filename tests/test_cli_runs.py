"""`ledger-sync` following syncs from an empty directory: runs, status, errors, cancel, a bogus resume,
and a CLI sync named and tagged in Prefect as the API names its runs."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

from cli.demo_data import load
from flows.artifacts import artifact_key
from flows.deployments import PRODUCT_TAG, SYNC_TAG, VENDOR_TAG


def test_cli_follows_syncs_and_names_them_in_prefect(tmp_path, db, prefect_server, capsys, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    from cli.main import main

    load(db, ["cli-runs"], documents=40)
    monkeypatch.chdir(tmp_path)  # an empty directory
    monkeypatch.setenv("LEDGER_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())

    def ledger_sync(*args: str) -> subprocess.CompletedProcess:
        """The command in this process (a subprocess would add seconds of imports to each)."""
        code = main(list(args))
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    with monkeypatch.context() as terminal:  # stderr a terminal: the progress bar shows
        terminal.setattr(sys.stderr, "isatty", lambda: True)
        synced = ledger_sync("sync", "--vendor", "cli-runs")
    assert synced.returncode == 0, synced.stderr
    shown = [line.strip() for line in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", synced.stderr).replace("\r", "\n")
             .splitlines() if line.strip()]
    sync_id = re.search(r"^(sync_cli-runs_\d+): completed$", "\n".join(shown), re.MULTILINE).group(1)
    # each rejection's warning is a line of its own above the bar, which counts them
    warnings = [line for line in shown if "rejected vendor=cli-runs" in line]
    assert len(warnings) == 4 and not any("%" in line or "━" in line for line in warnings), shown
    assert any("4 rejected" in line and "%" in line for line in shown), shown
    assert f"4 document(s) rejected: see `ledger-sync errors {sync_id}`" in shown

    history = ledger_sync("runs", "--vendor", "cli-runs", "--json")
    assert history.returncode == 0, history.stderr
    assert [run["syncId"] for run in json.loads(history.stdout)["runs"]] == [sync_id]
    status = json.loads(ledger_sync("status", sync_id, "--json").stdout)
    assert status["state"] == "completed" and status["stats"]["total"]["errors"] == 4
    errors = json.loads(ledger_sync("errors", sync_id, "--json").stdout)
    assert errors["syncId"] == sync_id and len(errors["errors"]) == 4
    assert all(row["reason"] and row["sourceId"] for row in errors["errors"])
    readable = ledger_sync("errors", sync_id)
    assert readable.returncode == 0 and len(readable.stdout.strip().splitlines()) == 4
    cancel = ledger_sync("cancel", sync_id, "--json")
    assert cancel.returncode == 3 and json.loads(cancel.stdout)["state"] == "completed"

    for args in (("status", "sync_bogus"), ("sync", "--vendor", "cli-runs", "--resume", "sync_bogus", "--json")):
        unknown = ledger_sync(*args)
        assert unknown.returncode == 2 and unknown.stdout == "", unknown
        assert unknown.stderr.strip() == "ledger-sync: unknown sync id 'sync_bogus'"

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    async def flow_runs():
        async with get_client() as client:
            return await client.read_flow_runs(flow_run_filter=FlowRunFilter(
                tags=FlowRunFilterTags(all_=[f"{SYNC_TAG}{sync_id}"])))

    [flow_run] = asyncio.run(flow_runs())
    assert flow_run.name == sync_id  # as `flows.deployments.flow_run_name` names the API's runs
    assert {PRODUCT_TAG, f"{VENDOR_TAG}cli-runs", f"{SYNC_TAG}{sync_id}"} <= set(flow_run.tags)

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id])))

    # its artifacts, under the vendor's keys, as an API sync's
    assert {a.key for a in asyncio.run(artifacts())} == {artifact_key("cli-runs", what)
                                                          for what in ("statistics", "summary", "progress")}


def test_a_sync_with_mongodb_uri_runs_from_an_empty_directory(tmp_path, db):
    """No `ledger-sync up`, no PREFECT_API_URL: the CLI's background Prefect server keeps its SQLite file
    under `.ledger-sync/`, which the command creates (the configured database needs nothing there)."""
    import os

    load(db, ["fresh"], documents=20, broken=False)
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME", "LEDGER_HOME")}
    env["LEDGER_PREFECT_IDLE_STOP_SECONDS"] = "2"  # the background server is gone soon after the test
    synced = subprocess.run([sys.executable, "-m", "cli.main", "sync", "--vendor", "fresh", "--json"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert synced.returncode == 0, synced.stderr
    summary = json.loads(synced.stdout)
    assert summary["state"] == "completed" and summary["stats"]["total"]["scanned"] == 20, summary
    assert (tmp_path / ".ledger-sync" / "prefect-cli").is_dir()
