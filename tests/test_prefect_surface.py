"""What an operator sees of a sync in the Prefect UI: its artifacts (statistics, summary, progress) under
keys of its vendor, a cancelled sync's flow run Cancelled (the process stopped by Prefect only when the flow
does not stop by itself), and a Retry of an already resumed run refused without failing."""

from __future__ import annotations

import asyncio
import re

from cli.demo_data import load
from flows.artifacts import artifact_key


def _prefect(call):
    """Run `call(client)` against the test's Prefect server."""
    from prefect.client.orchestration import get_client

    async def run():
        async with get_client() as client:
            return await call(client)

    return asyncio.run(run())


def _latest_artifact(key: str):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    found = _prefect(lambda client: client.read_artifacts(
        artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), sort=ArtifactSort.CREATED_DESC, limit=1))
    assert found, f"no artifact {key}"
    return found[0]


def test_artifact_keys_are_prefect_keys_and_keep_vendors_apart():
    keys = {artifact_key(vendor, "summary") for vendor in ("Acme_1", "acme-1", "ACME 1", "ünïcode", "-")}
    assert len(keys) == 5
    assert all(re.fullmatch(r"[a-z0-9-]+", key) for key in keys), keys
    assert artifact_key("acme-traders", "summary").startswith("ledger-acme-traders-")


def test_a_sync_leaves_its_statistics_summary_and_progress_as_artifacts_of_its_vendor(db, sync, store, monkeypatch):
    from flows.settings import get_settings

    monkeypatch.setenv("LEDGER_PUBLIC_URL", "https://books.example.com/")
    monkeypatch.setenv("LEDGER_BATCH_SIZE", "25")  # several batches move the progress bar
    get_settings.cache_clear()
    vendor = "Acme_Traders"
    load(db, [vendor], documents=40)  # four of them are broken: rejected
    summary = sync(vendor)
    assert summary["state"] == "completed"
    sync_id, flow_run_id = summary["syncId"], store.runs.get(summary["syncId"]).flow_run_id

    table = _latest_artifact(artifact_key(vendor, "statistics"))
    markdown = _latest_artifact(artifact_key(vendor, "summary"))
    bar = _latest_artifact(artifact_key(vendor, "progress"))
    assert {str(a.flow_run_id) for a in (table, markdown, bar)} == {flow_run_id}  # this sync's flow run
    assert table.type == "table" and markdown.type == "markdown" and bar.type == "progress"
    rows = {row["Kind"]: row for row in _rows(table.data)}
    total = summary["stats"]["total"]
    assert rows["Total"]["Documents read"] == total["scanned"] and rows["Total"]["Entries posted"] == total["synced"]
    assert rows["Total"]["Rejected documents"] == total["errors"] == 4
    assert rows["Sales invoices"]["Documents read"] == summary["stats"]["sales_invoices"]["scanned"] > 0
    text = markdown.data
    assert f"# Sync {sync_id} of {vendor}: completed" in text
    tb = summary["verification"]
    assert f"Trial balance balanced: debits {tb['totalDebit']}, credits {tb['totalCredit']}." in text
    receivables, payables = tb["receivables"], tb["payables"]
    assert f"| Receivables | {receivables['ledger']} | {receivables['documents']} | agree |" in text
    assert f"| Payables | {payables['ledger']} | {payables['documents']} | agree |" in text
    assert "**4** document(s) rejected" in text and f"`ledger-sync errors {sync_id}`" in text
    assert f"(https://books.example.com/?run={sync_id})" in text
    assert bar.data == 100.0


def _rows(data):
    """A table artifact's rows, whether Prefect keeps them as JSON text or as a list."""
    import json

    return json.loads(data) if isinstance(data, str) else data


def test_a_cancelled_sync_ends_cancelled_in_prefect_and_a_retry_after_its_resume_is_refused(db, sync, store):
    from prefect.client.schemas.objects import StateType
    from prefect.flow_engine import run_flow
    from prefect.states import AwaitingRetry

    from flows.runs import open_run
    from flows.sync_vendor import summary_of, sync_vendor_ledger
    from ledger.clock import utc_now
    from ledger.sync_run import SyncParameters

    vendor = "cancelled-then-resumed"
    load(db, [vendor], documents=30, broken=False)
    run = open_run(store, vendor, SyncParameters(), overlap_seconds=0, stale_after_seconds=60)
    assert store.runs.request_cancel(run.sync_id, vendor, utc_now()) is not None  # the vendor pressed Cancel
    state = sync_vendor_ledger(vendor, sync_id=run.sync_id, return_state=True)
    assert summary_of(state)["state"] == "cancelled"
    cancelled = _prefect(lambda client: client.read_flow_run(state.state_details.flow_run_id))
    assert cancelled.state.type == StateType.CANCELLED, cancelled.state  # not "Crash detected!"

    assert sync(vendor, sync_id=run.sync_id)["state"] == "completed"  # resumed in a flow run of its own
    resumed = store.runs.get(run.sync_id)

    # The operator presses Retry on the cancelled flow run: Prefect runs it again with its parameters.
    _prefect(lambda client: client.set_flow_run_state(cancelled.id, AwaitingRetry(), force=True))
    retried = _prefect(lambda client: client.read_flow_run(cancelled.id))
    again = run_flow(sync_vendor_ledger, flow_run=retried, parameters=retried.parameters, return_type="state")
    assert again.type == StateType.COMPLETED and again.name == "Skipped", again
    assert f"sync {run.sync_id} of vendor {vendor} is completed" in again.message
    assert "nothing to retry" in again.message
    after = store.runs.get(run.sync_id)
    assert (after.state, after.attempts, after.flow_run_id) == ("completed", resumed.attempts, resumed.flow_run_id)


def test_a_sync_completes_when_its_artifacts_cannot_be_written(db, sync, monkeypatch):
    import prefect.artifacts

    def refused(*args, **kwargs):
        raise RuntimeError("Prefect refused the artifact")

    for name in ("create_table_artifact", "create_markdown_artifact", "create_progress_artifact"):
        monkeypatch.setattr(prefect.artifacts, name, refused)
    load(db, ["no-artifacts"], documents=20, broken=False)
    summary = sync("no-artifacts")
    assert summary["state"] == "completed" and summary["stats"]["total"]["scanned"] == 20
    assert summary["verification"]["ok"] is True


def test_a_running_flow_that_does_not_stop_by_itself_is_set_cancelling_after_the_grace(prefect_server):
    """The API's cancel leaves a running flow run to stop at its next batch; one that has not within the
    grace period (its process stuck) is set Cancelling, for its runner to stop it."""
    from prefect import flow
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL
    from prefect.states import Running

    from api.orchestrator import Orchestrator

    @flow(name="stuck-sync")
    def stuck() -> None:
        pass

    async def scenario():
        orchestrator = Orchestrator(PREFECT_API_URL.value(), "sync-vendor-ledger/on-demand",
                                    force_cancel_after_seconds=0.5)
        await orchestrator.start()
        try:
            client = orchestrator.client
            flow_run = await client.create_flow_run(stuck, state=Running())
            assert await orchestrator.cancel(str(flow_run.id)) == "cancelling"
            left_alone = (await client.read_flow_run(flow_run.id)).state.type  # its flag is to stop it first
            await asyncio.sleep(1.5)
            return left_alone, (await client.read_flow_run(flow_run.id)).state.type
        finally:
            await orchestrator.close()

    left_alone, after_grace = asyncio.run(scenario())
    assert (left_alone, after_grace) == (StateType.RUNNING, StateType.CANCELLING)
