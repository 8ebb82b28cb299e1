"""`/metrics` after a real sync (figures from the run records) and `/docs` with nothing from outside."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import bearer, load_demo


def _scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def test_metrics_count_a_sync_run_by_the_flow_process(api, http, mongo, new_vendor, listeners):
    vendor = new_vendor("metrics")
    load_demo(mongo, vendor, 120)
    before = await http.get("/metrics")
    assert before.status_code == 200 and before.headers["content-type"].startswith("text/plain")
    room = await listeners(api.url, vendor)
    sync_id = (await http.post("/api/ledger/sync-data", headers=bearer(vendor), json={})).json()["syncId"]
    assert (await room.wait_end(sync_id, timeout=120))[0] == "sync_complete"
    total = (await http.get(f"/api/ledger/sync-status/{sync_id}", headers=bearer(vendor))).json()["stats"]["total"]

    first, after = _scrape(before.text), _scrape((await http.get("/metrics")).text)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - first.get(key, 0)

    incremental = {"mode": "incremental"}
    assert grew("ledger_sync_syncs_started_total", **incremental) == 1
    assert grew("ledger_sync_syncs_finished_total", state="completed", **incremental) == 1
    assert grew("ledger_sync_documents_processed_total", **incremental) == total["scanned"] == 124
    assert grew("ledger_sync_entries_posted_total", **incremental) == total["synced"] + total["reversed"] > 0
    assert grew("ledger_sync_documents_rejected_total", **incremental) == total["errors"] == 4
    assert grew("ledger_sync_sync_duration_seconds_count", **incremental) == 1
    assert grew("ledger_sync_sync_duration_seconds_bucket", le="+Inf", **incremental) == 1
    assert grew("ledger_sync_sync_duration_seconds_sum", **incremental) > 0
    assert after[("ledger_sync_active_syncs", (("state", "running"),))] >= 0  # every active state is shown
    assert after[("ledger_sync_events_bridge_connected", ())] == 1
    assert 0 < after[("ledger_sync_events_bridge_lag_seconds", ())] < 30  # it forwarded this sync's events
    assert ("ledger_sync_events_bridge_reconnects_total", ()) in after


async def test_docs_load_only_local_assets_and_declare_bearer_auth(http):
    page = await http.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"https?://", page.text), "the docs page must not load anything from outside"
    assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert {asset.rsplit("/", 1)[-1] for asset in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for asset in assets:
        assert asset.startswith("/"), asset
        assert (await http.get(asset)).status_code == 200, asset
    assert "/openapi.json" in page.text and '"validatorUrl": null' in page.text
    schema = (await http.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= next(iter(schemes.values())).items()
    assert all(operation.get("security") for path, item in schema["paths"].items() if path.startswith("/api/ledger")
               for operation in item.values())
