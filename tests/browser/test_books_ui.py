"""Reading the books in the dashboard (SPEC §8's web UI) in headless chromium against the real stack: one
demo vendor synced, one of its invoices voided and synced again, shared by every test here. Each figure
the page shows is compared with what the API returns for the same question; screenshots of every view at
desktop and phone width go to artifacts/screenshots/books-*.png."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest
from playwright.async_api import Page, expect
from pymongo import MongoClient

from ledger.clock import utc_now
from tests.browser.conftest import DESKTOP, SCREENSHOTS
from tests.stack import bearer, load_demo

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
NARROW = {"width": 375, "height": 812}
SYNC_TIMEOUT = 60


def thousands(value: str) -> str:
    """A decimal string as the page writes it (grouped, a real minus), by string work alone."""
    negative = value.startswith("-")
    whole, _, fraction = value.lstrip("-").partition(".")
    return f"{'−' if negative else ''}{int(whole):,}.{fraction.ljust(2, '0')}"


async def synced(http: httpx.AsyncClient, vendor: str, **body) -> None:
    response = await http.post("/api/ledger/sync-data", headers=bearer(vendor), json=body)
    assert response.status_code == 202, response.text
    sync_id = response.json()["syncId"]
    deadline = time.monotonic() + SYNC_TIMEOUT
    while (state := (await http.get(f"/api/ledger/sync-status/{sync_id}", headers=bearer(vendor))).json()["state"]) \
            not in ("completed", "failed", "cancelled", "crashed"):
        assert time.monotonic() < deadline, f"sync {sync_id} still {state}"
        await asyncio.sleep(0.2)
    assert state == "completed", sync_id


@pytest.fixture(scope="module")
async def books(api, mongo_uri, api_database):
    """A demo vendor synced, then one issued invoice voided and synced again: (vendor, voided invoice's entry id)."""
    vendor = f"books-{uuid.uuid4().hex[:6]}"
    client = MongoClient(mongo_uri, tz_aware=True)
    db = client[api_database]
    load_demo(db, vendor, 120)
    async with httpx.AsyncClient(base_url=api.url, timeout=20) as http:
        await synced(http, vendor)
        issued = [doc["_id"] for doc in db.salesinvoices.find({"vendorId": vendor, "status": "issued"}, {"_id": 1})]
        posted = db.ledger_entries.find_one({"vendorId": vendor, "source.type": "sales_invoice",
                                             "source.id": {"$in": issued}, "reversalOf": None})
        db.salesinvoices.update_one({"_id": posted["source"]["id"]},
                                    {"$set": {"status": "void", "updatedAt": utc_now()}})
        await synced(http, vendor)
    assert db.ledger_entries.count_documents({"vendorId": vendor, "reversalOf": posted["_id"]}) == 1
    client.close()
    return vendor, posted["_id"]


def tid(page: Page, test_id: str):
    return page.get_by_test_id(test_id)


async def get(http, vendor: str, path: str, **params) -> dict:
    response = await http.get(path, headers=bearer(vendor), params={k: v for k, v in params.items() if v})
    assert response.status_code == 200, response.text
    return response.json()


async def assert_fits(page: Page) -> None:
    """No element sticks out of the viewport sideways; a table may scroll inside its own container, so what
    counts there is the container."""
    result = await page.evaluate("""() => {
        const width = document.documentElement.clientWidth, out = [];
        const clipped = (node) => {
            for (let p = node.parentElement; p && p !== document.body; p = p.parentElement)
                if (getComputedStyle(p).overflowX !== 'visible') return true;
            return false;
        };
        for (const node of document.querySelectorAll('body *')) {
            const box = node.getBoundingClientRect();
            if ((!box.width && !box.height) || clipped(node)) continue;
            if (box.left < -0.5 || box.right > width + 0.5)
                out.push(`${node.tagName}#${node.id}.${node.className} ${box.left | 0}..${box.right | 0}`);
        }
        return { width, scrollWidth: document.documentElement.scrollWidth, out };
    }""")
    assert not result["out"] and result["scrollWidth"] <= result["width"], result


async def shoot(page: Page, name: str, anchor: str) -> None:
    """Desktop and phone: the view scrolled into sight, checked for sideways overflow (also on the narrowest
    phone), saved as books-NAME-desktop.png and books-NAME-phone.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in (("desktop", DESKTOP), ("narrow", NARROW), ("phone", PHONE)):
        await page.set_viewport_size(viewport)
        await tid(page, anchor).evaluate("n => (n.closest('section') || n).scrollIntoView({ block: 'start' })")
        await assert_fits(page)
        if size != "narrow":
            await page.screenshot(path=str(SCREENSHOTS / f"books-{name}-{size}.png"))
    await page.set_viewport_size(DESKTOP)


async def test_trial_balance_opens_a_ledger_and_a_line_its_history(books, http, open_dashboard):
    vendor, voided_entry = books
    page = await open_dashboard(vendor)
    tb = await get(http, vendor, "/api/ledger/trial-balance")
    table = tid(page, "trial-balance-table")
    await expect(table).to_have_attribute("data-state", "ready")
    await expect(tid(page, "trial-balance-row")).to_have_count(sum(1 for v in tb["balances"].values() if v != "0.00"))
    await expect(tid(page, "trial-balance-total-debit")).to_have_text(thousands(tb["totalDebit"]))
    await expect(tid(page, "trial-balance-as-of-label")).to_contain_text("current")
    await shoot(page, "trial-balance", "trial-balance-table")

    await page.locator('[data-testid="trial-balance-row"][data-account="accounts_receivable"] .pick').click()
    ledger = tid(page, "ledger-table")
    await expect(ledger).to_have_attribute("data-state", "ready")
    await expect(ledger).to_have_attribute("data-account", "accounts_receivable")
    pages = [await get(http, vendor, "/api/ledger/accounts/accounts_receivable/ledger", limit=50)]
    while pages[-1]["nextCursor"]:
        await expect(tid(page, "ledger-row")).to_have_count(sum(len(p["lines"]) for p in pages))
        await tid(page, "ledger-more").click()
        pages.append(await get(http, vendor, "/api/ledger/accounts/accounts_receivable/ledger", limit=50,
                               cursor=pages[-1]["nextCursor"]))
    assert len(pages) > 1, "the ledger fits one page: the cursor went untested"
    lines = [line for p in pages for line in p["lines"]]
    await expect(tid(page, "ledger-row")).to_have_count(len(lines))
    await expect(tid(page, "ledger-more")).to_be_hidden()
    assert await tid(page, "ledger-balance").all_inner_texts() == [thousands(line["balance"]) for line in lines]
    await expect(tid(page, "ledger-opening")).to_have_text(thousands(pages[0]["openingBalance"]))
    await expect(tid(page, "ledger-closing")).to_have_text(thousands(pages[0]["closingBalance"]))
    assert lines[-1]["balance"] == pages[0]["closingBalance"] == tb["balances"]["accounts_receivable"]
    await shoot(page, "ledger", "ledger-table")

    await page.locator(f'[data-testid="ledger-row"][data-entry-id="{voided_entry}"] .pick').click()
    dialog = tid(page, "doc-history")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_have_attribute("aria-busy", "false")
    entries = tid(page, "history-entry")
    await expect(entries).to_have_count(2)
    await expect(entries.nth(0).get_by_test_id("history-kind")).to_have_text("Posted")
    await expect(entries.nth(1)).to_have_attribute("data-reason", "voided")
    await expect(entries.nth(1)).to_contain_text("Reversed: the document was voided")
    await expect(entries.nth(1)).to_contain_text(f"Reverses entry {voided_entry}")
    await expect(entries.nth(1)).to_contain_text("Written by sync sync_")
    await shoot(page, "history", "doc-history")
    await tid(page, "doc-history-close").click()
    await expect(dialog).to_be_hidden()
    assert not page.js_errors, page.js_errors


async def test_reports_show_the_apis_figures_for_the_chosen_period(books, http, open_dashboard):
    vendor, _ = books
    page = await open_dashboard(vendor)

    await tid(page, "tab-pnl").click()
    await tid(page, "pnl-from").fill("2026-02-01")
    await tid(page, "pnl-to").fill("2026-03-31")
    pnl = await get(http, vendor, "/api/ledger/reports/profit-and-loss", **{"from": "2026-02-01", "to": "2026-03-31"})
    table = tid(page, "pnl-table")
    await expect(table).to_have_attribute("data-to", "2026-03-31")
    await expect(table).to_have_attribute("data-state", "ready")
    net = table.locator('[data-total="netProfit"] td.num')
    await expect(net).to_have_text(thousands(pnl["netProfit"]))
    everything = await get(http, vendor, "/api/ledger/reports/profit-and-loss")
    assert everything["netProfit"] != pnl["netProfit"]  # the period, not all time
    await expect(table.locator('[data-total="totalIncome"] td.num')).to_have_text(thousands(pnl["totalIncome"]))
    await expect(tid(page, "pnl-label")).to_contain_text("Feb 1, 2026 – Mar 31, 2026")
    await shoot(page, "pnl", "pnl-table")

    await tid(page, "tab-bs").click()
    await tid(page, "bs-as-of").fill("2026-03-31")
    sheet = await get(http, vendor, "/api/ledger/reports/balance-sheet", asOf="2026-03-31")
    table = tid(page, "bs-table")
    await expect(table).to_have_attribute("data-as-of", "2026-03-31")
    await expect(table).to_have_attribute("data-state", "ready")
    await expect(table.locator('[data-total="totalAssets"] td.num')).to_have_text(thousands(sheet["totalAssets"]))
    await expect(table.locator('[data-total="totalLiabilitiesAndEquity"] td.num')).to_have_text(
        thousands(sheet["totalLiabilitiesAndEquity"]))
    await shoot(page, "balance-sheet", "bs-table")

    await tid(page, "tab-aging").click()
    await tid(page, "aging-side").select_option("payable")
    await tid(page, "aging-as-of").fill("2026-04-30")
    aging = await get(http, vendor, "/api/ledger/reports/aging", side="payable", asOf="2026-04-30")
    table = tid(page, "aging-table")
    await expect(table).to_have_attribute("data-as-of", "2026-04-30")
    await expect(table).to_have_attribute("data-side", "payable")
    await expect(table).to_have_attribute("data-state", "ready")
    await expect(tid(page, "aging-row")).to_have_count(len(aging["parties"]))
    assert len({amount for amount in aging["buckets"].values() if amount != "0.00"}) > 1, aging["buckets"]
    await expect(table.locator('[data-total="total"] td.num')).to_have_text(
        [thousands(aging["buckets"][bucket]) for bucket in ("0-30", "31-60", "61-90", "91+")]
        + [thousands(aging["total"])])
    await shoot(page, "aging", "aging-table")
    assert not page.js_errors, page.js_errors


async def test_as_of_date_changes_the_trial_balance_never_showing_old_figures_meanwhile(books, http, open_dashboard):
    vendor, _ = books
    page = await open_dashboard(vendor)
    table = tid(page, "trial-balance-table")
    await expect(table).to_have_attribute("data-state", "ready")
    current = await get(http, vendor, "/api/ledger/trial-balance")
    as_of = await get(http, vendor, "/api/ledger/trial-balance", asOf="2026-02-15")
    assert as_of["totalDebit"] != current["totalDebit"]

    release = asyncio.Event()

    async def held(route):
        await release.wait()
        await route.continue_()

    await page.route("**/api/ledger/trial-balance?asOf=*", held)
    await tid(page, "trial-balance-as-of").fill("2026-02-15")
    # While the answer is on its way the old totals are gone, and the page says which date is coming.
    await expect(table).to_have_attribute("aria-busy", "true")
    await expect(tid(page, "trial-balance-total-debit")).to_have_text("—")
    await expect(tid(page, "trial-balance-row")).to_have_count(0)
    await expect(tid(page, "trial-balance-as-of-label")).to_contain_text("Loading the trial balance as of Feb 15, 2026")
    release.set()
    await expect(table).to_have_attribute("data-state", "ready")
    await expect(tid(page, "trial-balance-total-debit")).to_have_text(thousands(as_of["totalDebit"]))
    await expect(tid(page, "trial-balance-as-of-label")).to_contain_text("Figures as of Feb 15, 2026")
    await expect(tid(page, "trial-balance-row")).to_have_count(
        sum(1 for v in as_of["balances"].values() if v != "0.00"))

    await tid(page, "trial-balance-current").click()
    await expect(tid(page, "trial-balance-as-of")).to_have_value("")
    await expect(tid(page, "trial-balance-total-debit")).to_have_text(thousands(current["totalDebit"]))
    await expect(tid(page, "trial-balance-as-of-label")).to_contain_text("current")
    assert not page.js_errors, page.js_errors


async def test_export_buttons_download_the_books_with_the_token_in_a_header(books, open_dashboard, tmp_path):
    vendor, _ = books
    page = await open_dashboard(vendor)
    requests = []
    page.on("request", lambda r: requests.append(r) if "/api/ledger/export" in r.url else None)
    starts = {"csv": "entryId,date,account,debit,credit", "beancount": 'option "operating_currency" "INR"'}
    for file_format, start in starts.items():
        async with page.expect_download() as info:
            await tid(page, f"export-{file_format}").click()
        download = await info.value
        assert download.suggested_filename == f"books.{file_format}"
        saved = tmp_path / download.suggested_filename
        await download.save_as(saved)
        text = saved.read_text()
        assert text.startswith(start), text[:200]
        assert len(text.splitlines()) > 100
    assert [r.url.split("?")[1] for r in requests] == ["format=csv", "format=beancount"]
    for request in requests:
        assert (await request.all_headers())["authorization"].startswith("Bearer ")
    await expect(tid(page, "books-error")).to_be_hidden()
    assert not page.js_errors, page.js_errors
