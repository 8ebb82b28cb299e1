// Demo vendor dashboard: picks a vendor (development) or a token, opens the sync dialog,
// shows the sync history and the books (books.js), and refreshes both when a sync finishes.
// A sync's end is told by a toast (the dialog follows its run even when closed), the Sync Data
// button shows a running sync, and a history row opens that run's details.
import { fmtDecimal, fmtDuration } from './ledger-sync-modal.js';
import { refreshBooks, setBooksToken } from './books.js';
import { openRunDetails } from './run-details.js';
import { showToast } from './toasts.js';
import { el } from './dom.js';

const TOKEN_KEY = 'ledgerSync.token';
const VENDOR_KEY = 'ledgerSync.vendor';
const HISTORY_LIMIT = 20;
const STATE_TONES = {
  completed: 'ok', running: 'info', queued: 'idle', cancelling: 'warn',
  cancelled: 'warn', failed: 'bad', crashed: 'bad',
};

const $ = (id) => document.getElementById(id);
const modal = $('sync-modal');
const nf = new Intl.NumberFormat();
let token = '';


function svg(tag, attrs, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

async function getJson(path, { auth = true } = {}) {
  const headers = { Accept: 'application/json' };
  if (auth && token) headers.Authorization = `Bearer ${token}`;
  try {
    const res = await fetch(path, { headers });
    let body = null;
    try { body = await res.json(); } catch { /* non-JSON error page */ }
    return { ok: res.ok, status: res.status, body };
  } catch {
    return { ok: false, status: 0, body: null };
  }
}

function errorText(res, what) {
  const d = res.body && res.body.detail;
  const msg = (d && d.message) || (typeof d === 'string' && d);
  if (msg) return `${what}: ${msg}`;
  return res.status ? `${what} (HTTP ${res.status}).` : `${what}: the server cannot be reached.`;
}

function showError(text) {
  $('page-error').textContent = text;
  $('page-error').hidden = !text;
}

/** Reads the vendorId claim for display only; the server verifies the token. */
function vendorFromToken(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part)).vendorId || '';
  } catch {
    return '';
  }
}

// ---------- token and vendor ----------

function useToken(value, vendorLabel) {
  token = value;
  modal.token = value;
  const vendor = vendorLabel || vendorFromToken(value) || 'your business';
  $('vendor-title').textContent = vendor;
  $('vendor-label').hidden = false;
  $('vendor-name').textContent = $('vendor-picker').hidden ? vendor : '';
  $('sync-button').disabled = false;
  $('token-panel').hidden = true;
  showError('');
  setBooksToken(value);
  showRunning(null);
  refresh();
  loadLive();
  modal.watch(); // a sync already running (the page was reloaded, or it was started elsewhere)
  // `/?run=SYNC_ID` (a link from elsewhere, e.g. Prefect's summary of a sync) opens that run.
  const linked = new URL(window.location.href).searchParams.get('run');
  if (linked) openRun(linked);
}

async function useVendor(vendor) {
  localStorage.setItem(VENDOR_KEY, vendor);
  const res = await getJson(`/api/dev/token?vendor=${encodeURIComponent(vendor)}`, { auth: false });
  if (res.ok && res.body && res.body.token) useToken(res.body.token, vendor);
  else showError(errorText(res, 'Could not get a development token'));
}

async function init() {
  const dev = await getJson('/api/dev/vendors', { auth: false });
  if (dev.ok && dev.body && Array.isArray(dev.body.vendors) && dev.body.vendors.length) {
    const picker = $('vendor-picker');
    picker.replaceChildren(...dev.body.vendors.map((v) => el('option', { value: v, textContent: v })));
    const saved = localStorage.getItem(VENDOR_KEY);
    picker.value = dev.body.vendors.includes(saved) ? saved : dev.body.vendors[0];
    picker.hidden = false;
    picker.addEventListener('change', () => useVendor(picker.value));
    await useVendor(picker.value);
    return;
  }
  // Not a development server: the token comes from the URL (kept for next time) or from an earlier visit.
  const url = new URL(window.location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    localStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete('token');
    history.replaceState(null, '', url); // keep the token out of the address bar and of shared links
  }
  const saved = fromUrl || localStorage.getItem(TOKEN_KEY);
  if (saved) {
    useToken(saved);
  } else {
    $('token-panel').hidden = false;
    for (const id of ['history-body', 'tb-body']) $(id).querySelector('.empty').textContent = 'Sign in to see your books.';
  }
}

// ---------- history ----------

function statsOf(run) {
  const t = (run.stats && run.stats.total) || {};
  return {
    scanned: Number(t.scanned) || 0, synced: Number(t.synced) || 0,
    skipped: Number(t.skipped) || 0, errors: Number(t.errors) || 0,
  };
}

function docsPerSecond(run) {
  if (run.documentsPerSecond != null) return Math.round(run.documentsPerSecond);
  const seconds = Number(run.durationMs) / 1000;
  return seconds > 0 ? Math.round(statsOf(run).scanned / seconds) : null;
}

function fmtWhen(iso) {
  const d = iso ? new Date(iso) : null;
  return d && !Number.isNaN(d.getTime())
    ? d.toLocaleString(undefined, { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' })
    : '—';
}

function fmtAgo(iso) {
  const ms = Date.now() - new Date(iso).getTime();
  if (!Number.isFinite(ms)) return '—';
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  const minutes = Math.round(ms / 60000);
  if (minutes < 60) return rtf.format(-minutes, 'minute');
  const hours = Math.round(minutes / 60);
  return hours < 48 ? rtf.format(-hours, 'hour') : rtf.format(-Math.round(hours / 24), 'day');
}

function renderChart(runs) {
  const chart = $('history-chart');
  const ordered = runs.slice().reverse(); // oldest on the left
  const width = 600;
  const height = 120;
  const gap = 8;
  // At least 10 slots so a short history does not draw a few huge bars; the newest run sits on the right edge.
  const slots = Math.max(ordered.length, 10);
  const barWidth = (width - gap * (slots - 1)) / slots;
  const offset = (slots - ordered.length) * (barWidth + gap);
  const max = Math.max(1, ...ordered.map((r) => { const s = statsOf(r); return s.synced + s.skipped + s.errors; }));
  chart.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const bars = ordered.map((run, i) => {
    const s = statsOf(run);
    const x = offset + i * (barWidth + gap);
    let y = height;
    const parts = [['synced', 'var(--synced)'], ['skipped', 'var(--skipped)'], ['errors', 'var(--errors)']]
      .filter(([key]) => s[key] > 0)
      .map(([key, color]) => {
        const h = (s[key] / max) * (height - 4);
        y -= h;
        return svg('rect', { x, y, width: barWidth, height: Math.max(h, 1), fill: color, rx: 2 });
      });
    if (!parts.length) parts.push(svg('rect', { x, y: height - 2, width: barWidth, height: 2, fill: 'var(--skipped)' }));
    const tip = svg('title', {});
    tip.textContent = `${fmtWhen(run.startedAt)} — ${run.state}: ${plural(s.synced, 'entry', 'entries')} posted, `
      + `${plural(s.skipped, 'document', 'documents')} unchanged, ${nf.format(s.errors)} rejected`;
    return svg('g', {}, tip, ...parts);
  });
  const title = svg('title', { id: 'history-chart-title' });
  title.textContent = `Entries posted and documents unchanged or rejected per sync, last ${ordered.length} runs, oldest first`;
  const baseline = svg('line', { x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5, stroke: 'var(--line)' });
  chart.replaceChildren(title, baseline, ...bars);
  $('history-figure').hidden = !runs.length;
}

const openRun = (syncId) => openRunDetails(syncId, getJson);

function plural(n, one, many) { return `${nf.format(n)} ${n === 1 ? one : many}`; }

/** The ledger's entries as the newest completed sync left them, and what that sync changed. */
function renderEntriesTile(runs) {
  const tile = $('tile-synced');
  const sealed = runs.find((run) => run.state === 'completed' && run.ledgerEntries != null);
  if (!sealed) { tile.textContent = '—'; tile.title = 'Shown once a sync has completed'; return; }
  const t = (sealed.stats && sealed.stats.total) || {};
  const posted = Number(t.synced) || 0;
  const reversed = Number(t.reversed) || 0;
  const change = posted || reversed
    ? `last sync: +${nf.format(posted)}${reversed ? `, ${nf.format(reversed)} reversed` : ''}`
    : 'last sync: no change';
  tile.replaceChildren(el('span', { textContent: nf.format(sealed.ledgerEntries), dataset: { testid: 'tile-entries-total' } }),
    el('small', { textContent: change, dataset: { testid: 'tile-entries-change' } }));
  tile.title = `${plural(sealed.ledgerEntries, 'entry', 'entries')} in the ledger after the sync of ${fmtWhen(sealed.startedAt)}`;
}

function renderHistory(runs) {
  $('history-count').textContent = runs.length ? `Last ${runs.length} run${runs.length === 1 ? '' : 's'}` : '';
  const rows = runs.map((run) => {
    const s = statsOf(run);
    const rate = docsPerSecond(run);
    const row = el('tr', { dataset: { testid: 'history-row', syncId: run.syncId, state: run.state } },
      el('td', { title: run.syncId }, el('button', {
        type: 'button', className: 'run-link', textContent: fmtWhen(run.startedAt),
        ariaLabel: `Details of the sync of ${fmtWhen(run.startedAt)}`, dataset: { testid: 'history-open' } })),
      el('td', {}, el('span', { className: 'badge', textContent: run.state, dataset: { tone: STATE_TONES[run.state] || 'idle' } })),
      // data-label heads each figure when the rows turn into cards on phones.
      el('td', { className: 'num', textContent: run.durationMs != null ? fmtDuration(run.durationMs) : '—', dataset: { label: 'Duration' } }),
      el('td', { className: 'num', textContent: rate != null ? nf.format(rate) : '—', dataset: { label: 'Docs/s' } }),
      el('td', { className: 'num', textContent: nf.format(s.synced), dataset: { label: 'Entries posted' } }),
      el('td', { className: 'num', textContent: nf.format(s.skipped), dataset: { label: 'Docs unchanged' } }),
      el('td', {
        className: 'num errors-cell', textContent: nf.format(s.errors),
        dataset: s.errors ? { label: 'Docs rejected', nonzero: '' } : { label: 'Docs rejected' },
      }));
    row.addEventListener('click', () => openRun(run.syncId)); // the button inside takes the keyboard
    return row;
  });
  $('history-body').replaceChildren(...(rows.length ? rows
    : [el('tr', {}, el('td', { className: 'empty', colSpan: 7, textContent: 'No syncs yet — press Sync Data to post your books.' }))]));
  renderChart(runs);

  const last = runs[0];
  $('tile-last').textContent = last ? `${fmtAgo(last.startedAt)} · ${last.state}` : 'Never';
  renderEntriesTile(runs);
  $('tile-errors').textContent = last ? nf.format(statsOf(last).errors) : '—';
}

async function loadHistory() {
  const res = await getJson(`/api/ledger/sync-runs?limit=${HISTORY_LIMIT}`);
  if (!res.ok) return showError(errorText(res, 'Could not load the sync history'));
  renderHistory((res.body && res.body.runs) || []);
}

// ---------- the books (trial balance, ledgers, reports: books.js) ----------

function refresh() {
  return Promise.all([loadHistory(), refreshBooks()]);
}

// The continuous sync: while a watcher posts changes as they happen, say so, and keep the figures current.
const LIVE_POLL_MS = 10000;
async function loadLive() {
  const res = await getJson('/api/ledger/live');
  const live = res.ok && res.body && res.body.live;
  $('live-badge').hidden = !live;
  return live;
}
setInterval(async () => {
  if (!token) return;
  modal.watch(); // a sync started since elsewhere (CLI, schedule, another tab): its running state and its toast
  if (await loadLive() && !modal.open) refresh();
}, LIVE_POLL_MS);

// ---------- wiring ----------

$('sync-button').addEventListener('click', () => { modal.open = true; });
$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const value = $('token-input').value.trim();
  if (!value) return;
  localStorage.setItem(TOKEN_KEY, value);
  useToken(value);
});
// ---------- a sync's progress and end, whether or not the dialog is open ----------

function showRunning(detail) {
  const button = $('sync-button');
  const progress = button.querySelector('.sync-btn-progress');
  button.dataset.state = detail ? 'running' : 'idle';
  button.setAttribute('aria-busy', String(Boolean(detail)));
  button.querySelector('.sync-btn-label').textContent = detail
    ? (detail.state === 'cancelling' ? 'Cancelling…' : detail.state === 'queued' ? 'Sync queued' : 'Syncing…') : 'Sync Data';
  progress.hidden = !detail || detail.state === 'queued';
  progress.textContent = detail ? `${detail.percent}%` : '';
  button.title = detail ? 'A sync is running: open it to follow its progress' : '';
}

function toastEnd(kind, title, text, syncId) {
  if (modal.open) return; // the dialog shows the result itself
  const actions = [{ label: kind === 'rejections' ? 'See rejected documents' : 'Details', onClick: () => openRun(syncId) }];
  if (kind === 'cancelled' || kind === 'failed') actions.push({ label: 'Open sync', onClick: () => { modal.open = true; } });
  showToast({ kind, title, text, syncId, actions });
}

modal.addEventListener('ledger-sync-progress', (e) => showRunning(e.detail));
modal.addEventListener('ledger-sync-complete', (e) => {
  showRunning(null);
  refresh();
  const d = e.detail || {};
  const t = (d.stats && (d.stats.total || d.stats)) || {};
  const took = d.durationMs != null ? ` in ${fmtDuration(d.durationMs)}` : '';
  const posted = `${plural(Number(t.synced) || 0, 'entry', 'entries')} posted, ${nf.format(Number(t.reversed) || 0)} reversed`;
  const rejected = Number(t.errors) || 0;
  if (d.state === 'cancelled') {
    toastEnd('cancelled', 'Sync cancelled', `Stopped on request after ${posted}. Entries already posted are kept; resume it to finish.`, d.syncId);
  } else if (rejected) {
    toastEnd('rejections', `Sync complete — ${plural(rejected, 'document', 'documents')} rejected`,
      `${posted}${took}. Correct the rejected documents in your business app, then sync again.`, d.syncId);
  } else {
    toastEnd('completed', 'Sync complete', `${posted}${took}. Your books are up to date.`, d.syncId);
  }
});
modal.addEventListener('ledger-sync-error', (e) => {
  showRunning(null);
  loadHistory();
  const d = e.detail || {};
  toastEnd('failed', d.state === 'crashed' ? 'Sync stopped responding' : 'Sync failed',
    `${d.error || 'The sync stopped before it finished.'} Entries already posted are kept; resume it from the sync dialog.`, d.syncId);
});
// A run started from the dialog shows up in the history as soon as the dialog is closed.
modal.addEventListener('ledger-sync-close', () => { if (token) loadHistory(); });

init();
