"""`ledger-sync` following syncs from an empty directory: runs, status, errors, cancel, a bogus resume,
and a CLI sync named and tagged in Prefect as the API names its runs."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess

from flows.deployments import PRODUCT_TAG, SYNC_TAG, VENDOR_TAG


def test_cli_follows_syncs_and_names_them_in_prefect(tmp_path, db, prefect_server, capsys, monkeypatch):
    from prefect.settings import PREFECT_API_URL

    from cli.demo_data import load
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

    synced = ledger_sync("sync", "--vendor", "cli-runs")
    assert synced.returncode == 0, synced.stderr
    sync_id = re.search(r"^(sync_cli-runs_\d+): completed$", synced.stderr, re.MULTILINE).group(1)
    assert f"rejected: see `ledger-sync errors {sync_id}`" in synced.stderr

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
