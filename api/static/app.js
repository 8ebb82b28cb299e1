// Demo vendor dashboard: picks a vendor (development) or a token, opens the sync dialog,
// shows the sync history and the books (books.js), and refreshes both when a sync finishes.
import { fmtDuration } from './ledger-sync-modal.js';
import { refreshBooks, setBooksToken } from './books.js';

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

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

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
  refresh();
  loadLive();
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
    tip.textContent = `${fmtWhen(run.startedAt)} — ${run.state}: ${nf.format(s.synced)} synced, `
      + `${nf.format(s.skipped)} skipped, ${nf.format(s.errors)} errors`;
    return svg('g', {}, tip, ...parts);
  });
  const title = svg('title', { id: 'history-chart-title' });
  title.textContent = `Documents per sync, last ${ordered.length} runs, oldest first`;
  const baseline = svg('line', { x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5, stroke: 'var(--line)' });
  chart.replaceChildren(title, baseline, ...bars);
  $('history-figure').hidden = !runs.length;
}

function renderHistory(runs) {
  $('history-count').textContent = runs.length ? `Last ${runs.length} run${runs.length === 1 ? '' : 's'}` : '';
  const rows = runs.map((run) => {
    const s = statsOf(run);
    const rate = docsPerSecond(run);
    return el('tr', { dataset: { testid: 'history-row', syncId: run.syncId, state: run.state } },
      el('td', { textContent: fmtWhen(run.startedAt), title: run.syncId }),
      el('td', {}, el('span', { className: 'badge', textContent: run.state, dataset: { tone: STATE_TONES[run.state] || 'idle' } })),
      // data-label heads each figure when the rows turn into cards on phones.
      el('td', { className: 'num', textContent: run.durationMs != null ? fmtDuration(run.durationMs) : '—', dataset: { label: 'Duration' } }),
      el('td', { className: 'num', textContent: rate != null ? nf.format(rate) : '—', dataset: { label: 'Docs/s' } }),
      el('td', { className: 'num', textContent: nf.format(s.synced), dataset: { label: 'Synced' } }),
      el('td', { className: 'num', textContent: nf.format(s.skipped), dataset: { label: 'Skipped' } }),
      el('td', {
        className: 'num errors-cell', textContent: nf.format(s.errors),
        dataset: s.errors ? { label: 'Errors', nonzero: '' } : { label: 'Errors' },
      }));
  });
  $('history-body').replaceChildren(...(rows.length ? rows
    : [el('tr', {}, el('td', { className: 'empty', colSpan: 7, textContent: 'No syncs yet — press Sync Data to post your books.' }))]));
  renderChart(runs);

  const last = runs[0];
  $('tile-last').textContent = last ? `${fmtAgo(last.startedAt)} · ${last.state}` : 'Never';
  $('tile-synced').textContent = last ? nf.format(statsOf(last).synced) : '—';
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
  if (token && await loadLive() && !modal.open) refresh();
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
modal.addEventListener('ledger-sync-complete', refresh);
modal.addEventListener('ledger-sync-error', loadHistory);
// A run started from the dialog shows up in the history as soon as the dialog is closed.
modal.addEventListener('ledger-sync-close', () => { if (token) loadHistory(); });

init();
