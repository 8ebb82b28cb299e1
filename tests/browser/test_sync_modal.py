"""The Sync Data dialog in a real browser against the real stack: headless chromium → the API (in process) →
Prefect → the served deployment (LEDGER_BATCH_SIZE=25, so a few hundred demo documents take seconds) → SecantusDB.

Every number the dialog shows is checked against the database (`ledger_entries`, `ledger_sync_errors`) and the
API's sync-status. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import DESKTOP, PHONE, RUN_TIMEOUT, SCREENSHOTS
from tests.stack import bearer, load_demo

pytestmark = pytest.mark.browser

STEPS = ["check_existing", "sales_invoices", "purchase_invoices", "expenses", "complete"]
STAT_KEYS = ["synced", "skipped", "reversed", "errors"]
TERMINAL = ("completed", "cancelled", "failed")


# ---------- helpers ----------

def tid(page: Page, test_id: str):
    return page.get_by_test_id(test_id)  # CSS/test-id locators pierce the dialog's (open) shadow root


async def start_sync(page: Page) -> str:
    """Sync Data → Start sync with the default options; returns the syncId the dialog follows."""
    await tid(page, "sync-data-button").click()
    await expect(tid(page, "sync-dialog")).to_be_visible()
    await expect(tid(page, "sync-dialog")).to_have_attribute("data-phase", "idle")
    await tid(page, "start-button").click()
    handle = await page.wait_for_function("document.querySelector('ledger-sync-modal').syncId")
    return await handle.json_value()


async def wait_phase(page: Page, phase: str, timeout: int = RUN_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout / 1000
    dialog = tid(page, "sync-dialog")
    while (now := await dialog.get_attribute("data-phase")) != phase:
        if (now in TERMINAL and phase in TERMINAL) or time.monotonic() > deadline:
            detail = await page.evaluate("""() => { const r = document.querySelector('ledger-sync-modal').shadowRoot;
                return [r.querySelector('[data-testid=run-error]').innerText, r.querySelector('#message').innerText,
                        document.querySelector('ledger-sync-modal').syncId]; }""")
            raise AssertionError(f"dialog phase {now!r}, expected {phase!r}; error/message/syncId: {detail}")
        await asyncio.sleep(0.05)


async def shown_stats(page: Page) -> dict[str, int]:
    return {key: int((await tid(page, f"stat-{key}-value").inner_text()).replace(",", "")) for key in STAT_KEYS}


async def observed(page: Page) -> dict:
    return await page.evaluate("window.__obs")


async def status_of(http, vendor: str, sync_id: str) -> dict:
    response = await http.get(f"/api/ledger/sync-status/{sync_id}", headers=bearer(vendor))
    assert response.status_code == 200, response.text
    return response.json()


async def assert_numbers_match_ledger(page: Page, http, mongo, vendor: str, sync_id: str) -> dict:
    """The stat cards equal the run's statistics, and those equal what the database holds for the run."""
    status = await status_of(http, vendor, sync_id)
    total = status["stats"]["total"]
    shown = await shown_stats(page)
    assert shown == {key: total[key] for key in STAT_KEYS}, (shown, total)
    entries = mongo.ledger_entries.count_documents({"vendorId": vendor, "syncId": sync_id})
    assert entries > 0 and shown["synced"] + shown["reversed"] == entries, (shown, entries)
    rejected = mongo.ledger_sync_errors.count_documents({"vendorId": vendor, "syncId": sync_id})
    assert shown["errors"] == rejected == 4, (shown, rejected)  # the demo set's four broken documents
    return status


async def assert_step_counts(page: Page, status: dict) -> None:
    """Each finished transaction-type step shows how many documents it went through."""
    for step in status["steps"]:
        if step["name"] in STEPS[1:4]:
            assert step["processed"] > 0, step
            await expect(tid(page, f"step-{step['name']}")).to_contain_text(f"{step['processed']:,} documents")


def running_sequence(snapshots: list[dict]) -> list[str]:
    """The running step of each observed state, consecutive repeats collapsed."""
    sequence: list[str] = []
    for snap in snapshots:
        running = [key for key in STEPS if snap["steps"][key] == "running"]
        assert len(running) <= 1, snap
        if running and (not sequence or sequence[-1] != running[0]):
            sequence.append(running[0])
    return sequence


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


# ---------- 1. progress, timeline, final numbers ----------

async def test_sync_shows_progress_timeline_and_final_numbers(api, http, mongo, new_vendor, open_dashboard):
    vendor = new_vendor("ui")
    load_demo(mongo, vendor, 800)
    page = await open_dashboard(vendor)

    sync_id = await start_sync(page)
    assert sync_id.startswith(f"sync_{vendor}_")
    await expect(tid(page, "connection-status")).to_have_attribute("data-mode", "live")
    await expect(tid(page, "cancel-button")).to_be_visible()
    await wait_phase(page, "completed")

    snapshots = (await observed(page))["snapshots"]
    during = [s for s in snapshots if s["phase"] == "running"]
    sequence = running_sequence(snapshots)
    percents = [s["percent"] for s in snapshots if s["phase"] in ("running", "completed")]
    print(f"\nrunning steps seen: {sequence}\npercent values seen: {sorted(set(percents), key=percents.index)}")
    assert sequence == STEPS, sequence                      # every step ran, in order, none twice
    assert percents == sorted(percents), percents           # the bar never went backwards
    assert percents[-1] == 100 and len(set(percents)) >= 5, percents
    for snap in during:                                     # steps before the running one are done, after it waiting
        states = [snap["steps"][key] for key in STEPS]
        if "running" in states:
            at = states.index("running")
            assert set(states[:at]) <= {"done"} and set(states[at + 1:]) <= {"waiting"}, snap
    for key in STEPS:
        await expect(tid(page, f"step-{key}")).to_have_attribute("data-state", "done")
    await expect(tid(page, "progress-bar")).to_have_attribute("aria-valuenow", "100")
    await expect(tid(page, "progress-percent")).to_have_text("100%")

    status = await assert_numbers_match_ledger(page, http, mongo, vendor, sync_id)
    assert status["state"] == "completed"
    await assert_step_counts(page, status)
    await expect(tid(page, "summary")).to_be_visible()
    await expect(tid(page, "summary-duration")).not_to_have_text("—")
    check = tid(page, "summary-verification")
    await expect(check).to_have_attribute("data-balanced", "true")
    tb = (await http.get("/api/ledger/trial-balance", headers=bearer(vendor))).json()
    assert tb["totalDebit"] == tb["totalCredit"]
    await expect(check).to_contain_text("Trial balance checks out")
    await expect(tid(page, "new-sync-button")).to_be_visible()
    await expect(tid(page, "cancel-button")).to_be_hidden()

    # The dashboard behind the dialog refreshed: the run is in the history, the trial balance is the ledger's.
    await expect(page.locator(f'[data-testid="history-row"][data-sync-id="{sync_id}"]')).to_have_attribute(
        "data-state", "completed")
    nonzero = [k for k, v in tb["balances"].items() if float(v) != 0]
    await expect(tid(page, "trial-balance-row")).to_have_count(len(nonzero))
    assert not page.js_errors, page.js_errors


# ---------- 2. rejected documents ----------

async def test_rejected_documents_show_number_field_and_reason(api, http, mongo, new_vendor, open_dashboard):
    vendor = new_vendor("rej")
    load_demo(mongo, vendor, 120)
    page = await open_dashboard(vendor)
    sync_id = await start_sync(page)
    await wait_phase(page, "completed")
    await assert_numbers_match_ledger(page, http, mongo, vendor, sync_id)

    rejected = list(mongo.ledger_sync_errors.find({"vendorId": vendor, "syncId": sync_id}))
    assert len(rejected) == 4
    await expect(tid(page, "error-panel")).to_be_visible()
    await expect(tid(page, "error-panel")).to_contain_text("Rejected documents (4)")
    items = tid(page, "error-item")
    await expect(items).to_have_count(4)
    for doc in rejected:
        item = page.locator(f'[data-testid="error-item"][data-source-id="{doc["sourceId"]}"]')
        await expect(item).to_have_count(1)
        await expect(item.get_by_test_id("error-number")).to_have_text(doc["number"] or f"ID {doc['sourceId']}")
        if doc.get("field"):
            await expect(item.get_by_test_id("error-field")).to_have_text(doc["field"])
        await expect(item.get_by_test_id("error-reason")).to_have_text(doc["reason"])
        await expect(item.get_by_test_id("error-meta")).to_contain_text(f"ID {doc['sourceId']}")  # numbers repeat
    await expect(tid(page, "stat-errors")).to_have_attribute("data-nonzero", "")
    assert not page.js_errors, page.js_errors


# ---------- 3. polling fallback ----------

async def test_falls_back_to_polling_when_the_socket_is_blocked(api, http, mongo, new_vendor, open_dashboard):
    vendor = new_vendor("poll")
    load_demo(mongo, vendor, 600)
    page = await open_dashboard(vendor, block_socket=True)
    status_reads: list[float] = []
    page.on("request", lambda r: status_reads.append(time.monotonic()) if "/api/ledger/sync-status/" in r.url else None)

    sync_id = await start_sync(page)
    await expect(tid(page, "connection-status")).to_have_attribute("data-mode", "polling")
    await expect(tid(page, "connection-status")).to_contain_text("checking every second")
    await wait_phase(page, "completed")

    obs = await observed(page)
    assert obs["socketEvents"] == []                         # nothing came over the socket
    assert "live" not in {s["mode"] for s in obs["snapshots"]}
    assert len(status_reads) >= 3, status_reads              # the progress came from GET sync-status
    percents = [s["percent"] for s in obs["snapshots"] if s["phase"] in ("running", "completed")]
    assert percents == sorted(percents) and percents[-1] == 100, percents
    for snap in obs["snapshots"]:  # "Sales invoices: 75 of 212 documents" fills the step's counts
        counts = re.search(r": ([\d,]+) of ([\d,]+) documents$", snap["message"])
        if counts and snap["phase"] == "running":
            assert snap["runningMeta"] == f"{counts[1]} of {counts[2]} documents", snap
    for key in STEPS:
        await expect(tid(page, f"step-{key}")).to_have_attribute("data-state", "done")
    await assert_step_counts(page, await assert_numbers_match_ledger(page, http, mongo, vendor, sync_id))
    await expect(tid(page, "summary-verification")).to_have_attribute("data-balanced", "true")
    await expect(tid(page, "error-item")).to_have_count(4)


# ---------- 4. vendor isolation ----------

async def test_a_vendor_page_never_shows_another_vendors_sync(api, http, mongo, new_vendor, open_dashboard):
    vendor_a, vendor_b = new_vendor("isoa"), new_vendor("isob")
    load_demo(mongo, vendor_a, 200)
    load_demo(mongo, vendor_b, 500)  # different sizes: different numbers on the cards
    page_a, page_b = await asyncio.gather(open_dashboard(vendor_a), open_dashboard(vendor_b))
    # Both dialogs open and joined their rooms before either sync starts, so each could hear the other.
    sync_a, sync_b = await asyncio.gather(start_sync(page_a), start_sync(page_b))
    assert sync_a.startswith(f"sync_{vendor_a}_") and sync_b.startswith(f"sync_{vendor_b}_")
    await asyncio.gather(wait_phase(page_a, "completed"), wait_phase(page_b, "completed"))

    for page, mine, other, other_sync in ((page_a, vendor_a, vendor_b, sync_b), (page_b, vendor_b, vendor_a, sync_a)):
        events = (await observed(page))["socketEvents"]
        sync_events = [e for e in events if e["name"].startswith("sync_")]
        assert sync_events, "the recorder saw no socket events"
        assert {e["vendorId"] for e in sync_events} == {mine}, events
        assert {e["syncId"] for e in sync_events} == {sync_a if mine == vendor_a else sync_b}, events
        assert any(e["name"] == "sync_complete" for e in sync_events)
        # (The development vendor picker in the top bar lists every vendor by design; the page's content may not.)
        text = await page.evaluate("document.querySelector('main').innerHTML + document.querySelector("
                                   "'ledger-sync-modal').shadowRoot.innerHTML")
        assert other not in text and other_sync not in text
    await assert_numbers_match_ledger(page_a, http, mongo, vendor_a, sync_a)
    await assert_numbers_match_ledger(page_b, http, mongo, vendor_b, sync_b)
    assert (await shown_stats(page_a))["synced"] != (await shown_stats(page_b))["synced"]


# ---------- 5. cancel and resume ----------

async def test_cancel_mid_run_then_resume_completes(api, http, mongo, new_vendor, open_dashboard):
    vendor = new_vendor("cancel")
    load_demo(mongo, vendor, 2500)  # enough that the sales step is still running when the click lands
    page = await open_dashboard(vendor)
    sync_id = await start_sync(page)
    await expect(tid(page, "step-sales_invoices")).to_have_attribute("data-state", "running", timeout=30_000)
    # Cancel once something is posted, as a user who saw the count move would (the resume must continue it).
    await page.wait_for_function("Number(document.querySelector('ledger-sync-modal').shadowRoot"
                                 ".querySelector('[data-testid=stat-synced-value]').textContent.replace(/,/g, '')) > 0")
    await tid(page, "cancel-button").click()
    await wait_phase(page, "cancelled", timeout=30_000)

    assert (await status_of(http, vendor, sync_id))["state"] == "cancelled"
    await expect(tid(page, "summary")).to_have_attribute("data-state", "cancelled")
    await expect(tid(page, "resume-button")).to_be_visible()
    await expect(tid(page, "cancel-button")).to_be_hidden()
    for key in STEPS:
        await expect(tid(page, f"step-{key}")).not_to_have_attribute("data-state", "running")
    await expect(tid(page, "step-complete")).to_have_attribute("data-state", "waiting")
    percent_at_cancel = int(await tid(page, "progress-bar").get_attribute("aria-valuenow"))
    assert 0 < percent_at_cancel < 100
    partial = mongo.ledger_entries.count_documents({"vendorId": vendor, "syncId": sync_id})
    assert partial > 0

    await tid(page, "resume-button").click()
    await wait_phase(page, "running")
    await wait_phase(page, "completed")
    assert await page.evaluate("document.querySelector('ledger-sync-modal').syncId") == sync_id  # same run, resumed
    status = await assert_numbers_match_ledger(page, http, mongo, vendor, sync_id)
    assert status["state"] == "completed"
    assert mongo.ledger_entries.count_documents({"vendorId": vendor, "syncId": sync_id}) > partial
    await expect(tid(page, "summary-verification")).to_have_attribute("data-balanced", "true")
    for key in STEPS:
        await expect(tid(page, f"step-{key}")).to_have_attribute("data-state", "done")
    assert not page.js_errors, page.js_errors


# ---------- 6. screenshots ----------

async def test_screenshots_mid_sync_and_complete_desktop_and_phone(api, http, mongo, new_vendor, open_dashboard):
    vendor = new_vendor("shot")
    load_demo(mongo, vendor, 2500)  # long enough for two screenshots (~1 s each: backdrop blur in software) mid-run
    page = await open_dashboard(vendor, viewport=DESKTOP)
    await start_sync(page)
    await expect(tid(page, "step-sales_invoices")).to_have_attribute("data-state", "running", timeout=30_000)
    await page.wait_for_function("Number(document.querySelector('ledger-sync-modal').shadowRoot"
                                 ".querySelector('[data-testid=stat-synced-value]').textContent.replace(/,/g, '')) > 0")
    await screenshot(page, "sync-modal-running-desktop")
    await page.set_viewport_size(PHONE)
    await screenshot(page, "sync-modal-running-phone")
    assert await tid(page, "sync-dialog").get_attribute("data-phase") == "running", "screenshots taken too late"

    await wait_phase(page, "completed")
    await expect(tid(page, "error-item")).to_have_count(4)
    await screenshot(page, "sync-modal-completed-phone")
    await page.evaluate("document.querySelector('ledger-sync-modal').shadowRoot.querySelector('.scroll')"
                        ".scrollTo(0, 1e6)")
    await screenshot(page, "sync-modal-completed-phone-scrolled")
    # Nothing in the dialog is wider than the phone's screen (no sideways scrolling).
    widths = await page.evaluate("""() => {
        const dialog = document.querySelector('ledger-sync-modal').shadowRoot.querySelector('.dialog');
        return [dialog.getBoundingClientRect().width, dialog.scrollWidth,
                dialog.querySelector('.scroll').scrollWidth, dialog.querySelector('.scroll').clientWidth]; }""")
    assert widths[0] <= PHONE["width"] and widths[1] <= widths[0] and widths[2] <= widths[3], widths
    await page.set_viewport_size(DESKTOP)
    await page.evaluate("document.querySelector('ledger-sync-modal').shadowRoot.querySelector('.scroll')"
                        ".scrollTo(0, 0)")
    await screenshot(page, "sync-modal-completed-desktop")
    for name in ("running-desktop", "running-phone", "completed-desktop", "completed-phone"):
        assert (SCREENSHOTS / f"sync-modal-{name}.png").stat().st_size > 10_000
