"""Headless Debian chromium driven by Playwright's async API, on the session event loop that also runs the
in-process API (the sync API would block that loop). The stack fixtures (`api`, `mongo`, `new_vendor`, ...) come
from `tests/stack.py`.

Every page gets a recorder (an init script) before any of its own scripts run:
- `window.__obs.snapshots`: the dialog's observable state (phase, connection mode, percent, each step's state)
  each time the UI changes it (a MutationObserver on the dialog's shadow root);
- `window.__obs.socketEvents`: every Socket.IO event the page's socket received (`io` is wrapped when the
  socket.io bundle defines it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from playwright.async_api import expect

CHROMIUM = os.environ.get("LEDGER_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}
RUN_TIMEOUT = 120_000  # ms, for a whole sync at batch size 25 (a slow 2-core machine under the whole suite's load)

RECORDER = r"""
(() => {
  const obs = window.__obs = { snapshots: [], socketEvents: [] };
  // Wrap the socket.io client's io() as soon as its bundle assigns window.io.
  let realIo;
  Object.defineProperty(window, 'io', {
    configurable: true,
    get() { return realIo; },
    set(value) {
      if (typeof value !== 'function') { realIo = value; return; }
      const wrapped = function (...args) {
        const socket = value.apply(this, args);
        socket.onAny((name, payload) => obs.socketEvents.push({
          name, syncId: payload && payload.syncId, vendorId: payload && payload.vendorId,
          percent: payload && payload.percent, step: payload && payload.step, t: Date.now() }));
        return socket;
      };
      Object.assign(wrapped, value);
      realIo = wrapped;
    },
  });
  const STEPS = ['check_existing', 'sales_invoices', 'purchase_invoices', 'expenses', 'complete'];
  customElements.whenDefined('ledger-sync-modal').then(() => {
    const root = document.querySelector('ledger-sync-modal').shadowRoot;
    const q = (id) => root.querySelector(`[data-testid="${id}"]`);
    let last = '';
    const record = () => {
      const s = {
        phase: q('sync-dialog').dataset.phase,
        mode: q('connection-status').dataset.mode,
        percent: Number(q('progress-bar').getAttribute('aria-valuenow')),
        steps: Object.fromEntries(STEPS.map((k) => [k, q(`step-${k}`).dataset.state])),
        runningMeta: (root.querySelector('.step[data-state="running"] .step-meta') || {}).textContent || null,
        message: q('progress-message').textContent,
      };
      const key = JSON.stringify(s);
      if (key !== last) { last = key; obs.snapshots.push({ ...s, t: Date.now() }); }
    };
    new MutationObserver(record).observe(root, { subtree: true, attributes: true,
      attributeFilter: ['data-phase', 'data-mode', 'aria-valuenow', 'data-state'] });
    record();
  });
})();
"""


@pytest.fixture(scope="session")
async def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium not found at {CHROMIUM}: `make browser` installs Debian's chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        await launched.close()


@pytest.fixture
async def open_dashboard(browser, api):
    """Opens the dashboard for a vendor in its own browser context (own storage, own socket):
    `page = await open_dashboard(vendor, viewport=PHONE, block_socket=True)`."""
    contexts = []

    async def open_page(vendor_id: str, viewport: dict = DESKTOP, block_socket: bool = False):
        context = await browser.new_context(viewport=viewport, reduced_motion="reduce", locale="en-US",
                                            timezone_id="UTC")
        contexts.append(context)
        context.set_default_timeout(15_000)
        # The development picker lists every vendor in the database; pick ours before app.js reads it.
        await context.add_init_script(f"localStorage.setItem('ledgerSync.vendor', {json.dumps(vendor_id)});")
        await context.add_init_script(RECORDER)
        page = await context.new_page()
        page.js_errors = []  # uncaught exceptions in the page (network failures are not counted)
        page.on("pageerror", lambda error: page.js_errors.append(str(error)))
        if block_socket:
            # Socket.IO over HTTP long-polling and over WebSocket: both refused.
            await page.route("**/socket.io/**", lambda route: route.abort())
            await page.route_web_socket("**/socket.io/**", lambda ws: ws.close())
        await page.goto(f"{api.url}/")
        await expect(page.get_by_test_id("sync-data-button")).to_be_enabled()
        await expect(page.get_by_test_id("vendor-picker")).to_have_value(vendor_id)
        return page

    yield open_page
    for context in contexts:
        await context.close()
