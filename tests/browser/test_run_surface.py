"""The run surface of the dashboard in a real browser against the real stack: how a sync's end is told while
its dialog is closed (a toast), the Sync Data button while a sync runs (also after a reload), reopening the
dialog, and a run's details with its rejected documents and their CSV. Layout at 390 px and 1366 px: no
element wider than the screen. Screenshots go to artifacts/screenshots/runs-*.png.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
from datetime import UTC, datetime

import pytest
from bson import ObjectId
from playwright.async_api import Page, expect

from tests.browser.conftest import RUN_TIMEOUT, SCREENSHOTS
from tests.stack import bearer, load_demo

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}


def tid(page: Page, test_id: str):
    return page.get_by_test_id(test_id)


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"runs-{name}.png"
    await page.screenshot(path=str(path))
    assert path.stat().st_size > 5_000


async def sync_through_api(http, vendor: str) -> dict:
    response = await http.post("/api/ledger/sync-data", json={}, headers=bearer(vendor))
    assert response.status_code == 202, response.text
    sync_id = response.json()["syncId"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = (await http.get(f"/api/ledger/sync-status/{sync_id}", headers=bearer(vendor))).json()
        if status["state"] not in ("queued", "running", "cancelling"):
            return status
        await asyncio.sleep(0.2)
    raise AssertionError(f"sync {sync_id} did not finish: {status}")


OVERFLOW = """(roots) => {
    // Every visible box inside the viewport's width, and no scroll container (table wrappers) scrolling sideways.
    const width = document.documentElement.clientWidth;
    const found = [];
    const visit = (root) => {
        for (const node of root.querySelectorAll('*')) {
            const box = node.getBoundingClientRect();
            if (!box.width || !box.height || getComputedStyle(node).visibility === 'hidden') continue;
            if (node.closest('.sr-only')) continue;
            const name = `${node.tagName.toLowerCase()}.${node.className}`;
            if (box.left < -0.5 || box.right > width + 0.5) {
                found.push(`${name} ${Math.round(box.left)}..${Math.round(box.right)}`);
            }
            const style = getComputedStyle(node);
            if (['auto', 'scroll'].includes(style.overflowX) && node.scrollWidth > node.clientWidth + 1) {
                const inner = node.querySelector('[data-testid]');
                const what = inner ? inner.dataset.testid : '';
                found.push(`${name} (${what}) scrolls ${node.scrollWidth} > ${node.clientWidth}`);
            }
            if (node.shadowRoot) visit(node.shadowRoot);
        }
    };
    visit(document);
    const page = document.documentElement.scrollWidth;
    if (page > width) found.push(`page ${page} > ${width}`);
    return found;
}"""


async def assert_fits(page: Page, where: str) -> None:
    overflowing = await page.evaluate(OVERFLOW, None)
    assert not overflowing, f"{where}: {overflowing[:10]}"


# ---------- 1. toast, running button, reopening ----------

async def test_running_button_reopen_and_toast_after_closing_mid_sync(api, http, mongo, new_vendor, open_dashboard):
    vendor = new_vendor("toast")
    load_demo(mongo, vendor, 2500)  # a sync that lasts long enough to reload, close and reopen it
    page = await open_dashboard(vendor, viewport=LAPTOP)
    button = tid(page, "sync-data-button")
    await expect(button).to_have_attribute("data-state", "idle")

    await button.click()
    await tid(page, "start-button").click()
    sync_id = await (await page.wait_for_function("document.querySelector('ledger-sync-modal').syncId")).json_value()
    await expect(tid(page, "step-sales_invoices")).to_have_attribute("data-state", "running", timeout=30_000)
    # A page opened mid-sync (a reload) shows the running state too, at phone width.
    other = await open_dashboard(vendor, viewport=PHONE)
    await expect(tid(other, "sync-data-button")).to_have_attribute("data-state", "running")
    assert await other.evaluate("document.querySelector('ledger-sync-modal').syncId") == sync_id
    await screenshot(other, "button-running-390")

    await tid(page, "close-button").click()
    await expect(tid(page, "sync-dialog")).to_be_hidden()

    # The button says a sync runs, with how far it is.
    await expect(button).to_have_attribute("data-state", "running")
    await expect(button).to_have_attribute("aria-busy", "true")
    await expect(tid(page, "sync-data-label")).to_have_text("Syncing…")
    await expect(tid(page, "sync-data-progress")).to_have_text(re.compile(r"^\d+%$"))
    await screenshot(page, "button-running-1366")

    # Reopening shows the run being followed, not an empty form.
    await button.click()
    await expect(tid(page, "sync-dialog")).to_have_attribute("data-phase", "running")
    await expect(tid(page, "run-panel")).to_be_visible()
    await expect(tid(page, "options")).to_be_hidden()
    assert await page.evaluate("document.querySelector('ledger-sync-modal').syncId") == sync_id
    await tid(page, "close-button").click()

    # The end is told by a toast while the dialog is closed: the demo set's four broken documents.
    for shown in (page, other):
        toast = tid(shown, "toast")
        await expect(toast).to_have_count(1, timeout=RUN_TIMEOUT)
        await expect(toast).to_have_attribute("data-kind", "rejections")
        await expect(toast).to_have_attribute("data-sync-id", sync_id)
        await expect(tid(shown, "toast-title")).to_have_text("Sync complete — 4 documents rejected")
        await expect(tid(shown, "sync-data-button")).to_have_attribute("data-state", "idle")
    status = (await http.get(f"/api/ledger/sync-status/{sync_id}", headers=bearer(vendor))).json()
    posted = status["stats"]["total"]["synced"]
    await expect(tid(page, "toast-text")).to_contain_text(f"{posted:,} entries posted")
    await screenshot(page, "toast-1366")
    await screenshot(other, "toast-390")
    await assert_fits(other, "toast at 390 px")

    # The tile shows the ledger's entries and what this sync changed.
    entries = mongo.ledger_entries.count_documents({"vendorId": vendor})
    await expect(tid(page, "tile-entries-total")).to_have_text(f"{entries:,}")
    await expect(tid(page, "tile-entries-change")).to_have_text(f"last sync: +{posted:,}")

    # Reopened after the end: the result, with a way to start another.
    await tid(page, "sync-data-button").click()
    await expect(tid(page, "sync-dialog")).to_have_attribute("data-phase", "completed")
    await expect(tid(page, "summary")).to_be_visible()
    await expect(tid(page, "new-sync-button")).to_be_visible()
    assert not page.js_errors and not other.js_errors, (page.js_errors, other.js_errors)


async def test_a_sync_started_elsewhere_and_cancelled_ends_in_a_cancelled_toast(api, http, mongo, new_vendor,
                                                                               open_dashboard):
    vendor = new_vendor("cancelt")
    load_demo(mongo, vendor, 2000)
    page = await open_dashboard(vendor, viewport=PHONE)
    started = await http.post("/api/ledger/sync-data", json={}, headers=bearer(vendor))  # as the CLI would
    sync_id = started.json()["syncId"]
    # What the page does every 10 s (and on load): follow the vendor's unfinished run.
    assert await page.evaluate("document.querySelector('ledger-sync-modal').watch()") == sync_id
    await expect(tid(page, "sync-data-button")).to_have_attribute("data-state", "running")
    cancelled = await http.post(f"/api/ledger/sync-runs/{sync_id}/cancel", headers=bearer(vendor))
    assert cancelled.status_code == 202, cancelled.text
    toast = tid(page, "toast")
    await expect(toast).to_have_attribute("data-kind", "cancelled", timeout=30_000)
    await expect(tid(page, "toast-title")).to_have_text("Sync cancelled")
    await expect(tid(page, "sync-data-button")).to_have_attribute("data-state", "idle")
    await screenshot(page, "toast-cancelled-390")
    # Its "Open sync" shows the cancelled run in the dialog, with Resume.
    await toast.get_by_role("button", name="Open sync").click()
    await expect(tid(page, "sync-dialog")).to_have_attribute("data-phase", "cancelled")
    await expect(tid(page, "resume-button")).to_be_visible()
    assert not page.js_errors, page.js_errors


# ---------- 2. a run's details, its rejections and their CSV; layout at both widths ----------

async def test_history_row_opens_the_run_with_its_rejections_and_csv(api, http, mongo, new_vendor, open_dashboard):
    vendor = new_vendor("details")
    load_demo(mongo, vendor, 150)
    # A second INV-90001 (numbers repeat in real apps): only its date, amount and id tell it apart.
    first = mongo.salesinvoices.find_one({"vendorId": vendor, "invoiceNumber": "INV-90001"})
    twin = {**first, "_id": ObjectId(), "invoiceDate": datetime(2026, 5, 17, tzinfo=UTC), "total": "123.45"}
    mongo.salesinvoices.insert_one(twin)
    status = await sync_through_api(http, vendor)
    assert status["state"] == "completed" and status["stats"]["total"]["errors"] == 5, status
    # A second sync that changes nothing: the tile must still show the ledger, not 0.
    again = await sync_through_api(http, vendor)
    assert again["stats"]["total"]["synced"] == 0

    page = await open_dashboard(vendor, viewport=LAPTOP)
    entries = mongo.ledger_entries.count_documents({"vendorId": vendor})
    await expect(tid(page, "tile-entries-total")).to_have_text(f"{entries:,}")
    await expect(tid(page, "tile-entries-change")).to_have_text("last sync: no change")
    await expect(tid(page, "history-row")).to_have_count(2)
    await assert_fits(page, "dashboard at 1366 px")
    await screenshot(page, "dashboard-1366")

    await page.locator(f'[data-testid="history-row"][data-sync-id="{status["syncId"]}"]').get_by_test_id(
        "history-open").click()
    details = tid(page, "run-details")
    await expect(details).to_be_visible()
    await expect(tid(page, "run-parameters")).to_have_text("All dates · all transaction types · changes only")
    await expect(tid(page, "run-fact-state")).to_have_text("completed")
    await expect(tid(page, "run-step")).to_have_count(len(status["steps"]))
    for step in status["steps"]:
        if step["name"] in ("sales_invoices", "purchase_invoices", "expenses"):
            await expect(page.locator(f'[data-testid="run-step"][data-step="{step["name"]}"]')).to_contain_text(
                f"{step['processed']:,} documents")
    total_row = page.locator('[data-testid="run-stats-row"][data-kind="total"]')
    for figure in ("scanned", "synced", "reversed", "skipped", "errors"):
        await expect(total_row.locator(f'[data-figure="{figure}"]')).to_have_text(
            f"{status['stats']['total'][figure]:,}")
    await expect(tid(page, "run-verification")).to_have_attribute("data-ok", "true")
    await expect(tid(page, "run-verification")).to_contain_text("balanced")
    await expect(tid(page, "run-details-error")).to_have_count(0)  # a completed run has no error line

    rejected = list(mongo.ledger_sync_errors.find({"vendorId": vendor, "syncId": status["syncId"]}))
    assert len(rejected) == 5
    await expect(tid(page, "run-rejection")).to_have_count(5)
    twins = page.locator('[data-testid="run-rejection"]', has_text="INV-90001")
    await expect(twins).to_have_count(2)
    metas = sorted([await twins.nth(i).get_by_test_id("run-rejection-meta").inner_text() for i in range(2)])
    assert metas[0] != metas[1], metas  # told apart by date, amount and id
    item = page.locator(f'[data-testid="run-rejection"][data-source-id="{twin["_id"]}"]')
    await expect(item.get_by_test_id("run-rejection-date")).to_have_text("May 17, 2026")
    await expect(item.get_by_test_id("run-rejection-amount")).to_have_text("123.45")
    await expect(item.get_by_test_id("run-rejection-id")).to_have_text(f"ID {twin['_id']}")
    unreadable = next(d for d in rejected if d["field"] == "amount")  # the demo's "twelve hundred"
    await expect(page.locator(f'[data-testid="run-rejection"][data-source-id="{unreadable["sourceId"]}"]')
                 .get_by_test_id("run-rejection-amount")).to_have_text("twelve hundred")  # as stated
    await screenshot(page, "details-1366")

    # The CSV: fetched with the token, one row per rejected document, as the database has them.
    async with page.expect_download() as info:
        await tid(page, "run-rejections-csv").click()
    download = await info.value
    assert download.suggested_filename == f"rejected-{status['syncId']}.csv"
    rows = list(csv.DictReader(io.StringIO((await download.path()).read_text(encoding="utf-8"))))
    assert sorted((r["sourceId"], r["number"], r["field"], r["reason"]) for r in rows) == sorted(
        (str(d["sourceId"]), d["number"] or "", d["field"], d["reason"]) for d in rejected)
    by_id = {r["sourceId"]: r for r in rows}
    assert (by_id[str(twin["_id"])]["date"], by_id[str(twin["_id"])]["amount"]) == ("2026-05-17", "123.45")

    await page.set_viewport_size(PHONE)
    await expect(details).to_be_visible()
    await assert_fits(page, "run details at 390 px")
    await screenshot(page, "details-390")
    await tid(page, "run-details-close").click()
    await expect(details).to_be_hidden()

    # The dashboard at 390 px: history cards keep each figure in its own box.
    await assert_fits(page, "dashboard at 390 px")
    row = tid(page, "history-row").first
    cells = await row.locator("td").evaluate_all(
        "tds => tds.map(td => { const b = td.getBoundingClientRect(); return [b.left, b.right, b.top, b.bottom,"
        " td.scrollWidth <= td.clientWidth + 1]; })")
    for i, a in enumerate(cells):
        assert a[4], f"cell {i} overflows its box"
        for b in cells[i + 1:]:
            overlap = min(a[1], b[1]) - max(a[0], b[0]) > 0.5 and min(a[3], b[3]) - max(a[2], b[2]) > 0.5
            assert not overlap, (a, b)
    await tid(page, "history-table").scroll_into_view_if_needed()
    await screenshot(page, "dashboard-390")

    # The options dialog fits a 390 px screen (and a 1366 px one).
    await tid(page, "sync-data-button").click()
    await expect(tid(page, "sync-dialog")).to_have_attribute("data-phase", "idle")
    box = await tid(page, "sync-dialog").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    await assert_fits(page, "options at 390 px")
    await screenshot(page, "options-390")
    await page.set_viewport_size(LAPTOP)
    await assert_fits(page, "options at 1366 px")
    await screenshot(page, "options-1366")

    # A link to the run (`/?run=ID`, as Prefect's summary of a sync gives it) opens its details.
    await page.goto(f"{api.url}/?run={again['syncId']}")
    await expect(tid(page, "run-details")).to_be_visible()
    await expect(tid(page, "run-fact-state")).to_have_text("completed")
    await expect(tid(page, "run-rejection")).to_have_count(5)  # read again, still rejected
    assert not page.js_errors, page.js_errors
