/**
 * <ledger-sync-modal> — the Ledger Sync dialog as a framework-free Web Component.
 *
 *   <script type="module" src="/static/ledger-sync-modal.js"></script>
 *   <ledger-sync-modal token="<JWT>" api-base="" open></ledger-sync-modal>
 *
 * Attributes / properties:
 *   token     JWT sent as `Authorization: Bearer` and as the Socket.IO auth token
 *   api-base  origin of the Ledger Sync API (default: same origin)
 *   open      boolean; the dialog is shown while it is present (a value of "false" counts as absent)
 *
 * Events (bubbling, composed):
 *   ledger-sync-complete  detail = sync_complete payload {syncId, vendorId, state, stats, durationMs, verification}
 *   ledger-sync-error     detail = {syncId, error}
 *   ledger-sync-close     the dialog was closed
 *
 * Live progress comes from Socket.IO; when the socket cannot connect or drops, the
 * dialog polls GET /api/ledger/sync-status/{syncId} every second until it is back.
 * fmtDuration and fmtDecimal are exported for the demo dashboard (app.js).
 * Embedding guide: docs/embedding.md.
 */

const STEPS = [
  { key: 'check_existing', label: 'Checking existing transactions' },
  { key: 'sales_invoices', label: 'Sales invoices' },
  { key: 'purchase_invoices', label: 'Purchase invoices' },
  { key: 'expenses', label: 'Expenses' },
  { key: 'complete', label: 'Completion' },
];
const TYPES = STEPS.slice(1, 4);
const TYPE_KEYS = TYPES.map((t) => t.key);

const ACTIVE_STATES = new Set(['queued', 'running', 'cancelling']);
const RESUMABLE_STATES = new Set(['failed', 'crashed', 'cancelled', 'interrupted']);
// Server step states -> the words the timeline shows (and exposes as data-state).
const STEP_STATES = { pending: 'waiting', running: 'running', completed: 'done', failed: 'failed', skipped: 'skipped' };
const STAT_KEYS = ['synced', 'skipped', 'reversed', 'errors'];
const MAX_LISTED_ERRORS = 200;
const POLL_MS = 1000;
const MAX_STATUS_MISSES = 5;
const SILENCE_MS = 10000; // with the socket up, check the status after this long without an event
const JOIN_TIMEOUT_MS = 5000;

const SOURCE_LABELS = {
  sales_invoice: 'Sales invoice', sales_invoices: 'Sales invoice', salesinvoices: 'Sales invoice',
  purchase_invoice: 'Purchase invoice', purchase_invoices: 'Purchase invoice', purchaseinvoices: 'Purchase invoice',
  expense: 'Expense', expenses: 'Expense',
};
const TOKEN_ERRORS = {
  missing_token: 'no sign-in token',
  invalid_token: 'sign-in token not accepted',
  token_expired: 'sign-in expired',
};

const nf = new Intl.NumberFormat();
const fmtCount = (n) => nf.format(Number(n) || 0);

export function fmtDuration(ms) {
  if (ms == null || !Number.isFinite(Number(ms))) return '—';
  const s = Number(ms) / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${String(Math.round(s % 60)).padStart(2, '0')} s`;
}

/** Groups the integer part of a decimal string without going through a float. */
export function fmtDecimal(value) {
  if (value == null || value === '') return '—';
  const str = String(value).trim();
  const negative = str.startsWith('-');
  const [int, frac = ''] = str.replace(/^[-+]/, '').split('.');
  let grouped = int;
  try { grouped = BigInt(int || '0').toLocaleString(); } catch { /* not an integer: show as sent */ }
  return `${negative ? '−' : ''}${grouped}.${frac.padEnd(2, '0')}`;
}

function fmtDay(iso) {
  const d = new Date(`${iso}T00:00:00Z`);
  return Number.isNaN(d.getTime()) ? iso
    : d.toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' });
}

/** sync_progress carries flat stats; sync_complete and sync-status nest them under `total`. */
function flatStats(stats) {
  const s = (stats && (stats.total || stats)) || {};
  return Object.fromEntries([...STAT_KEYS, 'scanned'].map((k) => [k, Number(s[k]) || 0]));
}

function normalizeParams(p = {}) {
  const types = Array.isArray(p.types) && p.types.length ? p.types.filter((t) => TYPE_KEYS.includes(t)) : TYPE_KEYS;
  return { dateFrom: p.dateFrom || null, dateTo: p.dateTo || null, types, full: Boolean(p.full) };
}

/** A readable sentence from any error body the API returns (FastAPI 401/403/422 shapes, ours). */
function apiMessage(res, fallback) {
  const b = res.body || {};
  if (typeof b.detail === 'string') return b.detail;
  if (b.detail && typeof b.detail.message === 'string') return b.detail.message;
  if (Array.isArray(b.detail)) {
    return b.detail.map((d) => {
      const where = Array.isArray(d.loc) ? d.loc.filter((x) => x !== 'body').join('.') : '';
      return where ? `${where}: ${d.msg}` : d.msg;
    }).join('; ');
  }
  if (typeof b.message === 'string') return b.message;
  if (res.status === 0) return 'Could not reach the server. Check your connection and try again.';
  return `${fallback} (HTTP ${res.status}).`;
}

// The socket.io browser client is served by the API; load it once per page, whatever the number of dialogs.
let ioLoading = null;
function loadSocketIo(apiBase) {
  if (window.io) return Promise.resolve(window.io);
  if (!ioLoading) {
    ioLoading = new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = `${apiBase}/static/vendor/socket.io.min.js`;
      script.async = true;
      script.onload = () => (window.io ? resolve(window.io) : reject(new Error('socket.io client did not load')));
      script.onerror = () => {
        ioLoading = null; // let a later open try again
        script.remove();
        reject(new Error('socket.io client did not load'));
      };
      document.head.append(script);
    });
  }
  return ioLoading;
}

const ICONS = {
  logo: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M20 11a8 8 0 0 0-14.9-3.9M4 4v4h4M4 13a8 8 0 0 0 14.9 3.9M20 20v-4h-4"/></svg>',
  close: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M6 6l12 12M18 6L6 18"/></svg>',
  check: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M5 12.5l4.5 4.5L19 7.5"/></svg>',
  cross: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M7 7l10 10M17 7L7 17"/></svg>',
  dash: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M7 12h10"/></svg>',
  alert: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 8v5M12 16.5v.5M10.3 3.9L2.6 17.5A2 2 0 0 0 4.3 20.5h15.4a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z"/></svg>',
  stop: '<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="12" r="9"/><path d="M9.5 9.5h5v5h-5z"/></svg>',
  scale: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 4v16M7 20h10M5 8h14M5 8l-3 6a3 3 0 0 0 6 0zM19 8l-3 6a3 3 0 0 0 6 0z"/></svg>',
};

const STYLE = `
:host {
  --ink: #f8fafc;
  --ink-2: #cbd5e1;
  --ink-3: #94a3b8;
  --line: rgba(255, 255, 255, .14);
  --glass: rgba(255, 255, 255, .06);
  --accent: #a5b4fc;
  --ok: #34d399;
  --warn: #fbbf24;
  --bad: #fb7185;
  --radius: 22px;
  display: block;
  font-family: Inter, ui-sans-serif, system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  font-size: 15px;
  line-height: 1.45;
  color: var(--ink);
  -webkit-font-smoothing: antialiased;
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
svg { width: 1em; height: 1em; fill: none; stroke: currentColor; stroke-width: 2.2; stroke-linecap: round; stroke-linejoin: round; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }

/* ---------- backdrop and card ---------- */
.overlay {
  position: fixed; inset: 0; z-index: 2147483000;
  display: grid; place-items: center; padding: 16px;
  background:
    radial-gradient(60% 50% at 12% 18%, rgba(99, 102, 241, .55), transparent 70%),
    radial-gradient(50% 45% at 88% 12%, rgba(236, 72, 153, .42), transparent 70%),
    radial-gradient(55% 50% at 75% 95%, rgba(14, 165, 233, .45), transparent 70%),
    rgba(15, 23, 42, .62);
  -webkit-backdrop-filter: blur(8px); backdrop-filter: blur(8px);
  opacity: 0; visibility: hidden;
  transition: opacity .22s ease, visibility 0s linear .22s;
}
.overlay.is-open { opacity: 1; visibility: visible; transition: opacity .22s ease; }
.dialog {
  position: relative;
  width: min(640px, 100%);
  max-height: calc(100dvh - 32px);
  display: flex; flex-direction: column;
  background: linear-gradient(155deg, rgba(49, 46, 129, .62), rgba(15, 23, 42, .80) 55%);
  -webkit-backdrop-filter: blur(26px) saturate(160%); backdrop-filter: blur(26px) saturate(160%);
  border: 1px solid rgba(255, 255, 255, .18);
  border-radius: var(--radius);
  box-shadow: 0 40px 90px -24px rgba(2, 6, 23, .75), inset 0 1px 0 rgba(255, 255, 255, .14);
  transform: scale(.94) translateY(8px); opacity: 0;
  transition: transform .28s cubic-bezier(.2, .9, .3, 1.2), opacity .22s ease;
  outline: none;
}
.overlay.is-open .dialog { transform: none; opacity: 1; }
.scroll { overflow-y: auto; padding: 0 28px 8px; overscroll-behavior: contain; }

.head { display: flex; gap: 14px; align-items: flex-start; padding: 24px 28px 14px; }
.logo {
  flex: none; width: 44px; height: 44px; border-radius: 14px;
  display: grid; place-items: center; font-size: 22px; color: #fff;
  background: linear-gradient(135deg, #6366f1, #a855f7 55%, #ec4899);
  box-shadow: 0 10px 24px -8px rgba(168, 85, 247, .8);
}
.dialog[data-phase="running"] .logo svg, .dialog[data-phase="starting"] .logo svg { animation: spin 2.4s linear infinite; }
.titles { flex: 1; min-width: 0; }
h2 { margin: 0; font-size: 20px; font-weight: 650; letter-spacing: -.01em; }
.subtitle { margin: 2px 0 0; color: var(--ink-2); font-size: 14px; }
.icon-btn {
  flex: none; width: 36px; height: 36px; border-radius: 10px; border: 1px solid transparent;
  background: transparent; color: var(--ink-2); font-size: 18px; display: grid; place-items: center; cursor: pointer;
}
.icon-btn:hover { background: rgba(255, 255, 255, .1); color: var(--ink); }

.conn {
  display: inline-flex; align-items: center; gap: 8px; margin: 0 0 16px;
  padding: 4px 12px 4px 10px; border-radius: 999px; font-size: 12.5px;
  background: rgba(255, 255, 255, .07); border: 1px solid var(--line); color: var(--ink-2);
}
.conn .dot { width: 8px; height: 8px; border-radius: 50%; background: var(--ink-3); }
.conn[data-mode="live"] .dot { background: var(--ok); box-shadow: 0 0 0 3px rgba(52, 211, 153, .22); }
.conn[data-mode="polling"] { color: #fde68a; border-color: rgba(251, 191, 36, .35); background: rgba(251, 191, 36, .1); }
.conn[data-mode="polling"] .dot { background: var(--warn); animation: blink 1s ease-in-out infinite; }
.conn[data-mode="connecting"] .dot { animation: blink 1.2s ease-in-out infinite; }

/* ---------- options ---------- */
fieldset { border: 0; margin: 0 0 18px; padding: 0; min-width: 0; }
legend .optional { text-transform: none; letter-spacing: 0; font-weight: 450; color: var(--ink-3); }
legend, .label { display: block; padding: 0; margin-bottom: 8px; font-size: 12px; font-weight: 600; letter-spacing: .06em; text-transform: uppercase; color: var(--ink-2); }
.dates { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.field span { display: block; font-size: 13px; color: var(--ink-2); margin-bottom: 4px; }
input[type="date"] {
  width: 100%; height: 42px; padding: 0 12px; border-radius: 12px;
  border: 1px solid rgba(255, 255, 255, .2); background: rgba(255, 255, 255, .08);
  color: var(--ink); font: inherit; color-scheme: dark;
}
input[type="date"]:hover { border-color: rgba(255, 255, 255, .32); }
.chips { display: flex; flex-wrap: wrap; gap: 8px; }
.chip {
  display: inline-flex; align-items: center; gap: 8px; padding: 9px 14px; border-radius: 12px; cursor: pointer;
  border: 1px solid rgba(255, 255, 255, .2); background: rgba(255, 255, 255, .05); font-size: 14px; user-select: none;
  transition: background .15s, border-color .15s;
}
.chip:has(input:checked) { background: rgba(129, 140, 248, .22); border-color: rgba(165, 180, 252, .7); }
.chip input { width: 16px; height: 16px; margin: 0; accent-color: #818cf8; }
.toggle {
  display: flex; gap: 14px; align-items: flex-start; padding: 14px 16px; border-radius: 14px; cursor: pointer;
  background: var(--glass); border: 1px solid var(--line);
}
.toggle input {
  appearance: none; -webkit-appearance: none; flex: none; margin: 2px 0 0; cursor: pointer;
  width: 40px; height: 24px; border-radius: 999px; position: relative;
  background: rgba(255, 255, 255, .22); transition: background .2s;
}
.toggle input::after {
  content: ""; position: absolute; top: 3px; left: 3px; width: 18px; height: 18px; border-radius: 50%;
  background: #fff; box-shadow: 0 1px 3px rgba(0, 0, 0, .3); transition: transform .2s;
}
.toggle input:checked { background: #818cf8; }
.toggle input:checked::after { transform: translateX(16px); }
.toggle strong { display: block; font-weight: 600; }
.toggle small { display: block; color: var(--ink-2); font-size: 13px; margin-top: 2px; }

.notice {
  display: flex; gap: 12px; align-items: flex-start; padding: 12px 14px; margin: 0 0 18px; border-radius: 14px;
  font-size: 14px; background: rgba(251, 191, 36, .1); border: 1px solid rgba(251, 191, 36, .35); color: #fef3c7;
}
.notice svg { flex: none; font-size: 18px; margin-top: 1px; color: var(--warn); }
.notice.bad { background: rgba(244, 63, 94, .12); border-color: rgba(251, 113, 133, .45); color: #ffe4e6; }
.notice.bad svg { color: var(--bad); }
.notice.info { background: rgba(129, 140, 248, .12); border-color: rgba(165, 180, 252, .4); color: #e0e7ff; }
.notice.info svg { color: var(--accent); }
.notice p { margin: 0; }
.notice p + p { margin-top: 4px; color: inherit; opacity: .9; }

/* ---------- progress ---------- */
.params { margin: 0 0 14px; color: var(--ink-2); font-size: 13px; }
.progress-head { display: flex; align-items: baseline; justify-content: space-between; gap: 16px; margin-bottom: 10px; }
.message { color: var(--ink-2); font-size: 14px; min-width: 0; overflow-wrap: anywhere; }
.percent { font-size: 32px; font-weight: 700; letter-spacing: -.02em; font-variant-numeric: tabular-nums; line-height: 1; }
.percent small { font-size: 18px; font-weight: 600; color: var(--ink-2); margin-left: 1px; }
.bar { height: 10px; border-radius: 999px; background: rgba(255, 255, 255, .1); overflow: hidden; margin-bottom: 22px; }
.fill {
  height: 100%; width: 0; border-radius: inherit;
  background: linear-gradient(90deg, #818cf8, #c084fc, #f472b6, #818cf8); background-size: 300% 100%;
  transition: width .45s cubic-bezier(.2, .8, .2, 1);
  animation: flow 2.5s linear infinite;
}
.dialog[data-phase="completed"] .fill { background: linear-gradient(90deg, #10b981, #34d399); animation: none; }
.dialog[data-phase="failed"] .fill { background: linear-gradient(90deg, #e11d48, #fb7185); animation: none; }
.dialog[data-phase="cancelled"] .fill { background: linear-gradient(90deg, #d97706, #fbbf24); animation: none; }

/* A finished run leads with its outcome; the timeline moves to the end. */
#run { display: flex; flex-direction: column; }
.dialog:is([data-phase="completed"], [data-phase="cancelled"], [data-phase="failed"]) :is(#summary, #run-error) { order: 1; }
.dialog:is([data-phase="completed"], [data-phase="cancelled"], [data-phase="failed"]) :is(.stats, #errors) { order: 2; }
.dialog:is([data-phase="completed"], [data-phase="cancelled"], [data-phase="failed"]) .timeline { order: 3; }

/* ---------- timeline ---------- */
.timeline { list-style: none; margin: 0 0 20px; padding: 0; }
.step { position: relative; display: grid; grid-template-columns: 28px 1fr auto; gap: 14px; align-items: center; padding: 7px 0; }
.step:not(:last-child)::after {
  content: ""; position: absolute; left: 13px; top: 37px; bottom: -7px; width: 2px; border-radius: 2px;
  background: rgba(255, 255, 255, .14); transition: background .3s;
}
.step[data-state="done"]:not(:last-child)::after { background: rgba(52, 211, 153, .6); }
.marker {
  width: 28px; height: 28px; border-radius: 50%; display: grid; place-items: center; font-size: 15px;
  border: 2px solid rgba(255, 255, 255, .28); color: transparent; transition: background .25s, border-color .25s, transform .25s;
}
.marker svg { stroke-width: 3; display: none; }
.step[data-state="done"] .marker .i-check, .step[data-state="failed"] .marker .i-cross, .step[data-state="skipped"] .marker .i-dash { display: block; }
.step[data-state="waiting"] .marker::before { content: ""; width: 6px; height: 6px; border-radius: 50%; background: rgba(255, 255, 255, .35); }
.step[data-state="running"] .marker { border-color: rgba(165, 180, 252, .3); border-top-color: #c7d2fe; animation: spin .9s linear infinite; }
.step[data-state="done"] .marker { background: #10b981; border-color: #10b981; color: #fff; }
.step[data-state="failed"] .marker { background: #e11d48; border-color: #e11d48; color: #fff; }
.step[data-state="skipped"] .marker { border-style: dashed; color: var(--ink-3); }
.step-label { font-weight: 550; min-width: 0; }
.step[data-state="waiting"] .step-label, .step[data-state="skipped"] .step-label { color: var(--ink-2); font-weight: 450; }
.step[data-state="running"] .step-label { color: #fff; }
.step-meta { font-size: 13px; color: var(--ink-2); font-variant-numeric: tabular-nums; text-align: right; white-space: nowrap; }
.step[data-state="running"] .step-meta { color: #c7d2fe; }
.step[data-state="failed"] .step-meta { color: #fecdd3; }

/* ---------- stats ---------- */
.stats { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; margin-bottom: 20px; }
.stat { padding: 12px 14px; border-radius: 14px; background: var(--glass); border: 1px solid var(--line); position: relative; overflow: hidden; }
.stat::before { content: ""; position: absolute; inset: 0 auto 0 0; width: 3px; background: var(--tone); }
.stat .label { margin: 0 0 2px; font-size: 11px; }
.stat .value { font-size: 24px; font-weight: 700; font-variant-numeric: tabular-nums; letter-spacing: -.01em; display: inline-block; }
.stat .value.bump { animation: bump .35s ease; }
.stat[data-stat="synced"] { --tone: var(--ok); }
.stat[data-stat="skipped"] { --tone: #94a3b8; }
.stat[data-stat="reversed"] { --tone: var(--warn); }
.stat[data-stat="errors"] { --tone: var(--bad); }
.stat[data-stat="errors"][data-nonzero] { background: rgba(244, 63, 94, .14); border-color: rgba(251, 113, 133, .45); }

/* ---------- summary and errors ---------- */
.summary { padding: 16px 18px; margin-bottom: 18px; border-radius: 16px; background: rgba(16, 185, 129, .1); border: 1px solid rgba(52, 211, 153, .35); }
.summary[data-state="cancelled"] { background: rgba(251, 191, 36, .08); border-color: rgba(251, 191, 36, .35); }
.summary h3 { margin: 0 0 10px; font-size: 16px; font-weight: 650; display: flex; align-items: flex-start; gap: 8px; }
.summary-icon { flex: none; color: var(--ok); font-size: 18px; line-height: 0; margin-top: 2px; }
.summary[data-state="cancelled"] .summary-icon { color: var(--warn); }
.facts { display: grid; grid-template-columns: repeat(3, 1fr); gap: 10px; margin: 0 0 12px; }
.facts div { min-width: 0; }
.facts dt { font-size: 12px; color: var(--ink-2); }
.facts dd { margin: 0; font-weight: 650; font-variant-numeric: tabular-nums; }
.check { display: flex; gap: 10px; align-items: flex-start; padding-top: 12px; border-top: 1px solid var(--line); font-size: 14px; }
.check-icon { flex: none; font-size: 18px; line-height: 0; margin-top: 1px; }
.check[data-balanced="true"] .check-icon { color: var(--ok); }
.check[data-balanced="false"] .check-icon { color: var(--bad); }
.check[data-balanced="unknown"] .check-icon { color: var(--ink-3); }
.check p { margin: 0; }
.check ul { margin: 4px 0 0; padding: 0; list-style: none; color: var(--ink-2); font-size: 13px; }
.check li[data-ok="false"] { color: #fecdd3; }

.errors h3 { margin: 0 0 6px; font-size: 15px; font-weight: 650; }
.errors .hint { margin: 0 0 10px; font-size: 13.5px; color: var(--ink-2); }
.errors .hint strong { color: var(--ink); }
.error-list { list-style: none; margin: 0 0 16px; padding: 0; max-height: 240px; overflow-y: auto; border-radius: 14px; border: 1px solid rgba(251, 113, 133, .3); }
.error-item { display: grid; grid-template-columns: minmax(0, 1fr) auto; gap: 2px 12px; padding: 10px 14px; background: rgba(244, 63, 94, .07); }
.error-item + .error-item { border-top: 1px solid rgba(251, 113, 133, .18); }
.error-doc { font-weight: 600; overflow-wrap: anywhere; }
.error-type { font-size: 12px; color: var(--ink-2); align-self: center; }
.error-reason { grid-column: 1 / -1; font-size: 13.5px; color: #ffe4e6; }
.error-reason code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; padding: 1px 6px; border-radius: 6px; background: rgba(255, 255, 255, .1); color: #fff; margin-right: 6px; }
.more { padding: 8px 14px; font-size: 13px; color: var(--ink-2); }

/* ---------- footer and buttons ---------- */
.foot {
  display: flex; flex-wrap: wrap; justify-content: flex-end; gap: 10px;
  padding: 16px 28px 22px; border-top: 1px solid var(--line);
}
button.btn {
  height: 42px; padding: 0 18px; border-radius: 12px; font: inherit; font-weight: 600; cursor: pointer;
  border: 1px solid rgba(255, 255, 255, .2); background: rgba(255, 255, 255, .08); color: var(--ink);
  transition: background .15s, transform .1s, box-shadow .15s, opacity .15s;
}
button.btn:hover { background: rgba(255, 255, 255, .15); }
button.btn:active { transform: translateY(1px); }
button.btn.primary {
  border-color: transparent; color: #fff;
  background: linear-gradient(135deg, #4f46e5, #7c3aed 60%, #c026d3);
  box-shadow: 0 10px 24px -10px rgba(139, 92, 246, .9);
}
button.btn.primary:hover { filter: brightness(1.08); }
button.btn.danger { border-color: rgba(251, 113, 133, .5); color: #ffe4e6; background: rgba(244, 63, 94, .14); }
button.btn.danger:hover { background: rgba(244, 63, 94, .24); }
button.btn:disabled { opacity: .55; cursor: default; transform: none; filter: none; }
button:focus-visible, input:focus-visible { outline: 3px solid #fcd34d; outline-offset: 2px; }

@keyframes spin { to { transform: rotate(360deg); } }
@keyframes flow { to { background-position: -300% 0; } }
@keyframes blink { 50% { opacity: .35; } }
@keyframes bump { 40% { transform: scale(1.12); } }

@media (max-width: 480px) {
  .overlay { padding: 8px; align-items: end; }
  .dialog { max-height: calc(100dvh - 16px); --radius: 20px; }
  .head { padding: 18px 18px 12px; }
  .scroll { padding: 0 18px 6px; }
  .foot { padding: 14px 18px 18px; }
  .foot .btn { flex: 1 1 40%; }
  .stats { grid-template-columns: repeat(2, 1fr); }
  .percent { font-size: 28px; }
}
@media (max-width: 340px) {
  .dates { grid-template-columns: 1fr; }
}
@media (prefers-reduced-motion: reduce) {
  *, *::before, *::after { animation-duration: 0s !important; animation-iteration-count: 1 !important; transition-duration: 0s !important; }
}
`;

const TEMPLATE = `
<style>${STYLE}</style>
<div class="overlay" part="overlay">
  <div class="dialog" part="dialog" role="dialog" aria-modal="true" aria-labelledby="title" aria-describedby="subtitle"
       tabindex="-1" data-testid="sync-dialog" data-phase="idle">
    <div class="head">
      <div class="logo">${ICONS.logo}</div>
      <div class="titles">
        <h2 id="title">Sync your books</h2>
        <p class="subtitle" id="subtitle"></p>
      </div>
      <button type="button" class="icon-btn" id="close-x" data-testid="close-x" aria-label="Close">${ICONS.close}</button>
    </div>

    <div class="scroll">
      <p class="conn" id="conn-status" data-testid="connection-status" data-mode="connecting" role="status">
        <span class="dot" aria-hidden="true"></span><span id="conn-text">Connecting to live updates…</span>
      </p>

      <div class="notice" id="resume-notice" data-testid="resume-notice" hidden>${ICONS.alert}<div><p id="resume-text"></p></div></div>
      <div class="notice info" id="attach-notice" data-testid="attach-notice" hidden>${ICONS.logo}<div><p>A sync was already running for your account — showing its progress.</p></div></div>

      <form id="options" data-testid="options" novalidate>
        <fieldset>
          <legend>Date range <span class="optional">· optional, leave empty for all dates</span></legend>
          <div class="dates">
            <label class="field"><span>From</span><input type="date" id="date-from" name="dateFrom" data-testid="option-date-from"></label>
            <label class="field"><span>To</span><input type="date" id="date-to" name="dateTo" data-testid="option-date-to"></label>
          </div>
        </fieldset>
        <fieldset>
          <legend>Transaction types</legend>
          <div class="chips">
            ${TYPES.map((t) => `<label class="chip"><input type="checkbox" name="types" value="${t.key}" id="type-${t.key}" data-testid="option-type-${t.key}" checked>${t.label}</label>`).join('')}
          </div>
        </fieldset>
        <fieldset>
          <label class="toggle">
            <input type="checkbox" role="switch" id="full" name="full" data-testid="option-full" aria-labelledby="full-label" aria-describedby="full-help">
            <span><strong id="full-label">Full reconcile</strong><small id="full-help">Re-check every document, not just what changed, and reverse entries of deleted ones. Slower.</small></span>
          </label>
        </fieldset>
        <div class="notice bad" id="form-error" data-testid="form-error" role="alert" hidden>${ICONS.alert}<div><p id="form-error-text"></p></div></div>
      </form>

      <section id="run" data-testid="run-panel" hidden>
        <p class="params" id="run-params" data-testid="run-params"></p>
        <div class="progress-head">
          <span class="message" id="message" data-testid="progress-message"></span>
          <span class="percent" data-testid="progress-percent" aria-hidden="true"><span id="percent">0</span><small>%</small></span>
        </div>
        <div class="bar" id="bar" role="progressbar" aria-label="Sync progress" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0" data-testid="progress-bar">
          <div class="fill" id="fill"></div>
        </div>

        <ol class="timeline" data-testid="timeline" aria-label="Sync steps">
          ${STEPS.map((s) => `<li class="step" data-step="${s.key}" data-testid="step-${s.key}" data-state="waiting">
            <span class="marker" aria-hidden="true">${ICONS.check.replace('<svg', '<svg class="i-check"')}${ICONS.cross.replace('<svg', '<svg class="i-cross"')}${ICONS.dash.replace('<svg', '<svg class="i-dash"')}</span>
            <span class="step-label">${s.label}<span class="sr-only step-sr"></span></span>
            <span class="step-meta"></span>
          </li>`).join('')}
        </ol>

        <div class="stats" role="group" aria-label="Statistics">
          ${[['synced', 'Synced'], ['skipped', 'Skipped'], ['reversed', 'Reversed'], ['errors', 'Errors']].map(([k, label]) => `
          <div class="stat" data-stat="${k}" data-testid="stat-${k}">
            <p class="label">${label}</p><span class="value" data-testid="stat-${k}-value">0</span>
          </div>`).join('')}
        </div>

        <div class="notice bad" id="run-error" data-testid="run-error" role="alert" hidden>${ICONS.alert}
          <div><p id="run-error-text"></p><p id="run-error-hint"></p></div>
        </div>

        <div class="summary" id="summary" data-testid="summary" hidden>
          <h3><span class="summary-icon" id="summary-icon"></span><span id="summary-title"></span></h3>
          <dl class="facts">
            <div><dt>Duration</dt><dd id="summary-duration" data-testid="summary-duration"></dd></div>
            <div><dt>Documents</dt><dd id="summary-scanned" data-testid="summary-scanned"></dd></div>
            <div><dt>Speed</dt><dd id="summary-throughput" data-testid="summary-throughput"></dd></div>
          </dl>
          <div class="check" id="summary-check" data-testid="summary-verification" data-balanced="unknown">
            <span class="check-icon" id="check-icon">${ICONS.scale}</span>
            <div><p id="check-text"></p><ul id="check-list"></ul></div>
          </div>
        </div>

        <div class="errors" id="errors" data-testid="error-panel" hidden>
          <h3 id="errors-title"></h3>
          <p class="hint" data-testid="error-hint"><strong>What to do:</strong> correct these documents in your business app
            (the field named is the one that failed), then sync again.<span id="errors-posted"> Everything else has been
            posted, and the next sync picks up only what changed.</span></p>
          <ul class="error-list" id="error-list" data-testid="error-list"></ul>
        </div>
      </section>
      <div class="sr-only" aria-live="polite" aria-atomic="true" id="live" data-testid="live-region"></div>
    </div>

    <div class="foot">
      <button type="button" class="btn" id="new-sync" data-testid="new-sync-button" hidden>New sync</button>
      <button type="button" class="btn" id="close" data-testid="close-button">Close</button>
      <button type="button" class="btn danger" id="cancel" data-testid="cancel-button" hidden>Cancel sync</button>
      <button type="button" class="btn primary" id="resume" data-testid="resume-button" hidden>Resume</button>
      <button type="submit" class="btn primary" id="start" form="options" data-testid="start-button">Start sync</button>
    </div>
  </div>
</div>`;

const SUBTITLES = {
  idle: 'Post invoices, payments and expenses to your double-entry ledger.',
  starting: 'Starting…',
  running: 'You can close this window — the sync keeps running.',
  completed: 'Your ledger is up to date.',
  cancelled: 'The sync was stopped. Entries already posted are kept.',
  failed: 'The sync stopped before it finished.',
};

export class LedgerSyncModal extends HTMLElement {
  static observedAttributes = ['open', 'token', 'api-base'];

  #ui = {};
  #phase = 'idle';          // idle | starting | running | completed | cancelled | failed
  #run = null;              // the run this dialog follows (see #follow)
  #lastRun = null;          // newest run when the dialog opened idle; offers Resume if resumable
  #socket = null;
  #live = false;            // socket connected and vendor room joined
  #connMode = 'connecting'; // connecting | live | polling | offline
  #connReason = '';
  #pollTimer = null;
  #pollBusy = false;
  #heardAt = 0;             // last socket event for the followed run, or last status check
  #shown = false;
  #shownErrors = null;      // the error list currently rendered, to avoid rebuilding it on every update
  #returnFocus = null;
  #savedOverflow = '';
  #onKeydown = (e) => this.#handleKeydown(e);

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = TEMPLATE;
    for (const el of root.querySelectorAll('[id]')) this.#ui[el.id.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = el;
    this.#ui.overlay = root.querySelector('.overlay');
    this.#ui.dialog = root.querySelector('.dialog');
    this.#ui.steps = Object.fromEntries([...root.querySelectorAll('.step')].map((li) => [li.dataset.step, li]));
    this.#ui.stats = Object.fromEntries([...root.querySelectorAll('.stat')].map((el) => [el.dataset.stat, el]));
    this.#wire();
  }

  // ---------- public API ----------

  get token() { return this.getAttribute('token') || ''; }
  set token(v) { v ? this.setAttribute('token', v) : this.removeAttribute('token'); }

  get apiBase() { return (this.getAttribute('api-base') || '').replace(/\/+$/, ''); }
  set apiBase(v) { v ? this.setAttribute('api-base', v) : this.removeAttribute('api-base'); }

  // React 18 renders open={false} as open="false"; treat that as closed.
  get open() { const v = this.getAttribute('open'); return v !== null && v !== 'false'; }
  set open(v) { v ? this.setAttribute('open', '') : this.removeAttribute('open'); }

  /** The syncId the dialog currently follows, or null. */
  get syncId() { return this.#run ? this.#run.syncId : null; }

  show() { this.open = true; }
  close() { this.open = false; }

  connectedCallback() {
    // A framework may set properties before this module defined the element; re-run them through the setters.
    for (const prop of ['token', 'apiBase', 'open']) {
      if (Object.prototype.hasOwnProperty.call(this, prop)) {
        const value = this[prop];
        delete this[prop];
        this[prop] = value;
      }
    }
    this.#syncOpenState();
  }

  disconnectedCallback() {
    this.#syncOpenState();
    this.#teardownSocket();
    this.#stopPolling();
  }

  attributeChangedCallback(name, oldValue, newValue) {
    if (oldValue === newValue || !this.isConnected) return;
    if (name === 'open') {
      this.#syncOpenState();
    } else if (this.#socket || this.#shown) {
      // New token or API origin: reconnect so the server sees the new credentials.
      this.#teardownSocket();
      this.#ensureSocket();
    }
  }

  // ---------- open / close ----------

  /** Shows or hides the dialog to match `open` (called from every lifecycle hook, so it must be idempotent). */
  #syncOpenState() {
    const want = this.isConnected && this.open;
    if (want && !this.#shown) this.#opened();
    else if (!want && this.#shown) this.#closed();
  }

  #opened() {
    this.#shown = true;
    const active = document.activeElement;
    this.#returnFocus = active && active !== document.body ? active : null;
    this.#ui.overlay.classList.add('is-open');
    document.addEventListener('keydown', this.#onKeydown, true);
    this.#lockScroll();
    this.#ensureSocket();
    if (!this.#run || this.#run.terminal) {
      this.#resetToIdle();
      this.#attachToRunning();
    }
    this.#render();
    requestAnimationFrame(() => this.#focusInitial());
  }

  #closed() {
    this.#shown = false;
    this.#ui.overlay.classList.remove('is-open');
    document.removeEventListener('keydown', this.#onKeydown, true);
    this.#unlockScroll();
    if (this.#returnFocus && this.#returnFocus.isConnected) this.#returnFocus.focus();
    this.#returnFocus = null;
    this.#emit('ledger-sync-close', {});
  }

  #lockScroll() {
    this.#savedOverflow = document.documentElement.style.overflow;
    document.documentElement.style.overflow = 'hidden';
  }

  #unlockScroll() { document.documentElement.style.overflow = this.#savedOverflow; }

  /** Idle = nothing in flight; Esc and the backdrop close the dialog only then. */
  #isIdle() { return this.#phase !== 'starting' && this.#phase !== 'running'; }

  #focusables() {
    return [...this.shadowRoot.querySelectorAll('button, input, [href], [tabindex]:not([tabindex="-1"])')]
      .filter((el) => !el.disabled && el.getClientRects().length > 0);
  }

  #focusInitial() {
    if (!this.open) return;
    const buttons = (sel) => [...this.shadowRoot.querySelectorAll(sel)];
    const primary = [...buttons('.foot .btn.primary'), ...buttons('.foot .btn')].find((b) => !b.hidden && !b.disabled);
    (primary || this.#ui.dialog).focus();
  }

  #handleKeydown(e) {
    if (!this.open) return;
    if (e.key === 'Escape') {
      if (this.#isIdle()) { e.preventDefault(); this.close(); }
      return;
    }
    if (e.key !== 'Tab') return;
    const items = this.#focusables();
    if (!items.length) return;
    const current = this.shadowRoot.activeElement;
    const first = items[0];
    const last = items[items.length - 1];
    if (e.shiftKey && (current === first || !items.includes(current))) { e.preventDefault(); last.focus(); }
    else if (!e.shiftKey && (current === last || !items.includes(current))) { e.preventDefault(); first.focus(); }
  }

  #wire() {
    const ui = this.#ui;
    ui.options.addEventListener('submit', (e) => { e.preventDefault(); this.#start(); });
    ui.options.addEventListener('input', () => this.#showFormError(''));
    ui.cancel.addEventListener('click', () => this.#cancel());
    ui.resume.addEventListener('click', () => this.#resume());
    ui.close.addEventListener('click', () => this.close());
    ui.closeX.addEventListener('click', () => this.close());
    ui.newSync.addEventListener('click', () => { this.#resetToIdle(); this.#render(); this.#focusInitial(); });
    ui.overlay.addEventListener('click', (e) => { if (e.target === ui.overlay && this.#isIdle()) this.close(); });
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  // ---------- REST ----------

  async #api(path, { method = 'GET', body } = {}) {
    const headers = { Accept: 'application/json' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    try {
      const res = await fetch(`${this.apiBase}${path}`, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
      let data = null;
      try { data = await res.json(); } catch { /* empty or non-JSON body */ }
      return { ok: res.ok, status: res.status, body: data };
    } catch {
      return { ok: false, status: 0, body: null };
    }
  }

  /** On open: follow a run that is already queued or running (started elsewhere) instead of starting a second. */
  async #attachToRunning() {
    if (!this.token) return;
    const res = await this.#api('/api/ledger/sync-runs?limit=1');
    const newest = res.ok && res.body && Array.isArray(res.body.runs) ? res.body.runs[0] : null;
    if (!newest || this.#phase !== 'idle' || !this.open) return;
    if (ACTIVE_STATES.has(newest.state)) {
      this.#follow(newest.syncId, newest.parameters, { attached: true });
      this.#applySnapshot(newest);
    } else if (newest.resumable ?? RESUMABLE_STATES.has(newest.state)) {
      this.#lastRun = newest;
      this.#render();
    }
  }

  #readOptions() {
    const f = this.#ui.options.elements;
    const types = [...this.#ui.options.querySelectorAll('input[name="types"]:checked')].map((i) => i.value);
    return { dateFrom: f.dateFrom.value || null, dateTo: f.dateTo.value || null, types, full: f.full.checked };
  }

  async #start() {
    if (this.#phase !== 'idle') return;
    if (!this.token) return this.#showFormError('You are not signed in: this page has no access token.');
    const opts = this.#readOptions();
    if (!opts.types.length) return this.#showFormError('Choose at least one transaction type to sync.');
    if (opts.dateFrom && opts.dateTo && opts.dateFrom > opts.dateTo) {
      return this.#showFormError('The “From” date is after the “To” date.');
    }
    const body = { types: opts.types, full: opts.full };
    if (opts.dateFrom) body.dateFrom = opts.dateFrom;
    if (opts.dateTo) body.dateTo = opts.dateTo;

    this.#phase = 'starting';
    this.#render();
    const res = await this.#api('/api/ledger/sync-data', { method: 'POST', body });
    if (res.ok && res.body && res.body.syncId) {
      this.#follow(res.body.syncId, opts);
    } else if (res.status === 409 && res.body && res.body.syncId) {
      this.#follow(res.body.syncId, null, { attached: true });
    } else {
      this.#phase = 'idle';
      this.#showFormError(apiMessage(res, 'The sync could not be started'));
      this.#render();
    }
  }

  async #cancel() {
    const run = this.#run;
    if (!run || run.terminal) return;
    run.cancelRequested = true;
    run.actionError = '';
    this.#render();
    const res = await this.#api(`/api/ledger/sync-runs/${encodeURIComponent(run.syncId)}/cancel`, { method: 'POST' });
    if (run !== this.#run) return;
    if (!res.ok) {
      run.cancelRequested = false;
      run.actionError = apiMessage(res, 'The sync could not be cancelled');
    }
    this.#render();
  }

  async #resume() {
    const source = this.#run && this.#run.terminal ? this.#run : this.#lastRun;
    if (!source) return;
    this.#ui.resume.disabled = true;
    const res = await this.#api(`/api/ledger/sync-runs/${encodeURIComponent(source.syncId)}/resume`, { method: 'POST' });
    this.#ui.resume.disabled = false;
    const syncId = res.body && res.body.syncId;
    if ((res.ok || res.status === 409) && syncId) {
      this.#follow(syncId, source.params || source.parameters, { attached: res.status === 409 });
    } else if (this.#phase === 'idle') {
      this.#showFormError(apiMessage(res, 'The sync could not be resumed'));
    } else {
      this.#run.actionError = apiMessage(res, 'The sync could not be resumed');
      this.#render();
    }
  }

  // ---------- following a run ----------

  /** Start following syncId: reset the progress view, then let socket events, polling or one status read fill it. */
  #follow(syncId, params, { attached = false } = {}) {
    const p = normalizeParams(params || {});
    this.#run = {
      syncId,
      params: p,
      attached,
      state: 'queued',
      percent: 0,
      stepIndex: -1,
      message: 'Waiting for the sync to start…',
      steps: Object.fromEntries(STEPS.map((s) => [s.key, {
        state: TYPE_KEYS.includes(s.key) && !p.types.includes(s.key) ? 'skipped' : 'waiting',
        processed: null, total: null, durationMs: null,
      }])),
      stats: flatStats(null),
      durationMs: null,
      docsPerSecond: null, // the server's figure when it sends one
      verification: null,
      error: null,
      resumable: false,
      terminal: false,
      errorDocs: null,
      actionError: '',    // a failed cancel / resume / status read, shown in the error box
      cancelRequested: false, // a progress event sent before the cancel landed must not re-enable Cancel
      stalled: false,     // status checks stopped: token refused or run unknown
      misses: 0,          // status reads in a row that answered 404
    };
    this.#lastRun = null;
    this.#phase = 'running';
    this.#showFormError('');
    this.#announce('Sync started.');
    this.#render();
    this.#updatePolling();
    // Events sent before we knew the syncId (or before the room was joined) are lost; one read catches up.
    this.#refreshStatus();
  }

  async #refreshStatus() {
    const run = this.#run;
    if (!run) return;
    const res = await this.#api(`/api/ledger/sync-status/${encodeURIComponent(run.syncId)}`);
    if (run !== this.#run) return;
    if (res.ok && res.body) {
      run.misses = 0;
      this.#applySnapshot(res.body);
    } else if (res.status === 401 || res.status === 403) {
      this.#giveUp(res);
    } else if (res.status === 404 && ++run.misses >= MAX_STATUS_MISSES) {
      // Once is a race with the run being recorded; several in a row means it is gone (e.g. a reset database).
      this.#giveUp(res);
    }
  }

  /** A full run document (sync-status, sync-runs). */
  #applySnapshot(s) {
    const run = this.#run;
    if (!run || !s || s.syncId !== run.syncId) return;
    const terminal = !ACTIVE_STATES.has(s.state);
    const progress = s.progress || {};
    // Out-of-order reads (a poll answered after a newer socket event) must not move the view backwards.
    if (run.terminal && !terminal) return;
    if (!terminal && Number(progress.percent) < run.percent) return;

    if (s.parameters) {
      run.params = normalizeParams(s.parameters);
      for (const key of TYPE_KEYS) {
        if (!run.params.types.includes(key)) run.steps[key].state = 'skipped';
      }
    }
    run.state = s.state;
    if (progress.percent != null) run.percent = Number(progress.percent);
    if (progress.message) run.message = progress.message;
    if (progress.stepIndex != null) run.stepIndex = Number(progress.stepIndex);
    if (Array.isArray(s.steps)) {
      for (const step of s.steps) {
        const mine = run.steps[step.name];
        if (!mine) continue;
        mine.state = STEP_STATES[step.state] || 'waiting';
        mine.processed = step.processed ?? mine.processed;
        mine.total = step.total || mine.total; // run records leave a step's total at 0 (unknown); keep the live one
        mine.durationMs = step.durationMs ?? null;
      }
    }
    // The running step's counts are in the progress snapshot (what a polling dialog has instead of socket events).
    const current = run.steps[progress.step];
    if (current && current.state === 'running' && Number(progress.total) > 0) {
      current.processed = progress.processed ?? current.processed;
      current.total = progress.total;
    }
    if (s.stats) run.stats = flatStats(s.stats);
    if (s.durationMs != null) run.durationMs = s.durationMs;
    if (s.documentsPerSecond != null) run.docsPerSecond = Number(s.documentsPerSecond);
    if (s.verification !== undefined) run.verification = s.verification;
    run.error = s.error || run.error;
    run.resumable = s.resumable ?? RESUMABLE_STATES.has(s.state);

    if (terminal && !run.terminal) {
      this.#finish(s.state === 'completed' || s.state === 'cancelled'
        ? { type: 'ledger-sync-complete', detail: {
          syncId: s.syncId, vendorId: s.vendorId, state: s.state, stats: s.stats,
          durationMs: s.durationMs, verification: s.verification ?? null,
        } }
        : { type: 'ledger-sync-error', detail: { syncId: s.syncId, error: s.error || `Sync ${s.state}` } });
    } else {
      this.#render();
    }
  }

  /** sync_progress from the socket. */
  #onProgress(ev) {
    const run = this.#run;
    if (!run || !ev || ev.syncId !== run.syncId || run.terminal) return;
    this.#heardAt = Date.now();
    const percent = Number(ev.percent) || 0;
    if (percent < run.percent) return;
    const prevStep = run.stepIndex;
    run.percent = percent;
    if (ev.state) run.state = ev.state;
    else if (run.state === 'queued') run.state = 'running';
    if (ev.message) run.message = ev.message;
    if (ev.stats) run.stats = { ...run.stats, ...flatStats(ev.stats) };
    if (run.state !== 'queued' && Number.isInteger(ev.stepIndex)) {
      run.stepIndex = ev.stepIndex;
      STEPS.forEach((s, i) => {
        const step = run.steps[s.key];
        if (step.state === 'skipped' || step.state === 'failed') return;
        if (i < ev.stepIndex) step.state = 'done';
        else if (i === ev.stepIndex) {
          step.state = 'running';
          step.processed = ev.processed ?? step.processed;
          step.total = ev.total ?? step.total;
        }
      });
      if (prevStep !== ev.stepIndex && STEPS[ev.stepIndex]) {
        this.#announce(`Step ${ev.stepIndex + 1} of ${STEPS.length}: ${STEPS[ev.stepIndex].label}. ${Math.round(percent)} percent.`);
      }
    }
    this.#render();
  }

  /** sync_complete from the socket. */
  #onComplete(ev) {
    const run = this.#run;
    if (!run || !ev || ev.syncId !== run.syncId || run.terminal) return;
    run.state = ev.state || 'completed';
    if (ev.stats) run.stats = flatStats(ev.stats);
    run.durationMs = ev.durationMs ?? run.durationMs;
    run.verification = ev.verification ?? run.verification;
    run.resumable = RESUMABLE_STATES.has(run.state);
    if (run.state === 'completed') run.percent = 100;
    this.#finish({ type: 'ledger-sync-complete', detail: ev });
    this.#refreshStatus(); // step timings, and whether a cancelled run can be resumed
  }

  /** sync_error from the socket. */
  #onError(ev) {
    const run = this.#run;
    if (!run || !ev || ev.syncId !== run.syncId || run.terminal) return;
    run.state = 'failed';
    run.error = ev.error || 'The sync failed.';
    run.resumable = true;
    this.#finish({ type: 'ledger-sync-error', detail: { syncId: ev.syncId, error: run.error } });
    this.#refreshStatus();
  }

  #finish(event) {
    const run = this.#run;
    run.terminal = true;
    this.#phase = run.state === 'completed' ? 'completed' : run.state === 'cancelled' ? 'cancelled' : 'failed';
    for (const s of STEPS) {
      const step = run.steps[s.key];
      if (this.#phase === 'completed' && step.state !== 'skipped') step.state = 'done';
      if (this.#phase === 'failed' && step.state === 'running') step.state = 'failed';
      if (this.#phase === 'cancelled' && step.state === 'running') step.state = 'waiting';
    }
    this.#stopPolling();
    this.#render();
    const st = run.stats;
    this.#announce(this.#phase === 'completed'
      ? `Sync complete. ${st.synced} entries posted, ${st.skipped} skipped, ${st.errors} errors.`
      : this.#phase === 'cancelled' ? 'Sync cancelled.' : `Sync failed: ${run.error || ''}`);
    this.#emit(event.type, event.detail);
    if (st.errors > 0) this.#loadErrors(run);
    if (this.open) this.#focusInitial();
  }

  async #loadErrors(run) {
    const res = await this.#api(`/api/ledger/sync-runs/${encodeURIComponent(run.syncId)}/errors`);
    if (run !== this.#run || !res.ok || !res.body) return;
    run.errorDocs = Array.isArray(res.body.errors) ? res.body.errors : [];
    this.#renderErrors();
  }

  /** Stop following: the server refuses the token or no longer knows the run. */
  #giveUp(res) {
    const run = this.#run;
    if (!run) return;
    run.actionError = apiMessage(res, 'The sync status cannot be read');
    run.stalled = true;
    this.#stopPolling();
    this.#render();
  }

  // ---------- socket and polling ----------

  async #ensureSocket() {
    if (this.#socket) return;
    if (!this.token) return this.#setConn('offline', 'not signed in');
    const marker = {};
    this.#socket = marker; // claims the slot while the client script loads
    let io;
    try {
      io = await loadSocketIo(this.apiBase);
    } catch {
      if (this.#socket === marker) this.#socket = null;
      return this.#setConn('polling', '');
    }
    if (this.#socket !== marker) return; // torn down meanwhile
    const options = {
      path: '/socket.io',
      // A function, so every reconnect sends the token as it is now.
      auth: (cb) => cb({ token: this.token }),
    };
    const socket = this.apiBase ? io(this.apiBase, options) : io(options);
    this.#socket = socket;
    socket.on('connect', () => this.#joinRoom(socket));
    socket.on('connect_error', (err) => {
      const code = err && err.data && err.data.code;
      this.#setLive(false, TOKEN_ERRORS[code] || '');
    });
    socket.on('disconnect', () => this.#setLive(false, ''));
    socket.on('sync_progress', (ev) => this.#onProgress(ev));
    socket.on('sync_complete', (ev) => this.#onComplete(ev));
    socket.on('sync_error', (ev) => this.#onError(ev));
  }

  #joinRoom(socket) {
    // Runs on the first connect and on every reconnect: the server forgets room membership with the old connection.
    socket.timeout(JOIN_TIMEOUT_MS).emit('join_vendor_room', {}, (err, ack) => {
      if (socket !== this.#socket || !socket.connected) return;
      if (!err && ack && ack.ok) {
        this.#heardAt = Date.now();
        this.#setLive(true, '');
        if (this.#run && !this.#run.terminal) this.#refreshStatus(); // catch up on anything missed while away
      } else {
        this.#setLive(false, err ? 'no answer from the server' : (ack && ack.error) || 'room refused');
      }
    });
  }

  #teardownSocket() {
    const socket = this.#socket;
    this.#socket = null;
    if (socket && typeof socket.disconnect === 'function') {
      socket.removeAllListeners();
      socket.disconnect();
    }
    this.#live = false;
    this.#updatePolling();
  }

  #setLive(live, reason) {
    this.#live = live;
    this.#setConn(live ? 'live' : 'polling', reason);
    this.#updatePolling();
  }

  #setConn(mode, reason) {
    this.#connMode = mode;
    this.#connReason = reason;
    this.#renderConn();
  }

  /** One timer while an unfinished run is followed: it polls when the socket is down and watches it when up. */
  #updatePolling() {
    const run = this.#run;
    const needed = Boolean(run && !run.terminal && !run.stalled && this.isConnected);
    if (needed && !this.#pollTimer) {
      this.#heardAt = Date.now();
      this.#pollTimer = setInterval(() => this.#tick(), POLL_MS);
    } else if (!needed) {
      this.#stopPolling();
    }
  }

  #stopPolling() {
    clearInterval(this.#pollTimer);
    this.#pollTimer = null;
  }

  async #tick() {
    const run = this.#run;
    const live = this.#live;
    if (this.#pollBusy || (live && Date.now() - this.#heardAt < SILENCE_MS)) return;
    this.#pollBusy = true; // a slow answer must not pile up requests
    const before = `${run.state}:${run.percent}`;
    try { await this.#refreshStatus(); } finally { this.#pollBusy = false; }
    this.#heardAt = Date.now();
    // A "connected" socket that let progress go by unseen is half-open (sleeping laptop, proxy): reconnect it.
    if (live && this.#live && run === this.#run && `${run.state}:${run.percent}` !== before && this.#socket) {
      this.#socket.disconnect().connect();
    }
  }

  // ---------- rendering ----------

  #resetToIdle() {
    this.#run = null;
    this.#lastRun = null;
    this.#phase = 'idle';
    this.#showFormError('');
    this.#stopPolling();
  }

  #showFormError(text) {
    this.#ui.formError.hidden = !text;
    this.#ui.formErrorText.textContent = text;
  }

  #announce(text) {
    // Clearing first makes screen readers repeat an identical message.
    this.#ui.live.textContent = '';
    requestAnimationFrame(() => { this.#ui.live.textContent = text; });
  }

  #renderConn() {
    const ui = this.#ui;
    const mode = this.#connMode;
    ui.connStatus.dataset.mode = mode;
    const reason = this.#connReason ? ` (${this.#connReason})` : '';
    ui.connText.textContent = {
      connecting: 'Connecting to live updates…',
      live: 'Live updates on',
      polling: 'Live updates unavailable — checking every second',
      offline: 'Live updates off',
    }[mode] + reason;
  }

  #render() {
    const ui = this.#ui;
    const phase = this.#phase;
    const run = this.#run;
    const busy = phase === 'starting' || phase === 'running';
    ui.dialog.dataset.phase = phase;
    ui.subtitle.textContent = SUBTITLES[phase];
    this.#renderConn();

    const showOptions = phase === 'idle' || phase === 'starting';
    ui.options.hidden = !showOptions;
    for (const el of ui.options.elements) el.disabled = phase === 'starting';
    ui.run.hidden = showOptions;
    ui.attachNotice.hidden = !(run && run.attached && !run.terminal);

    const last = this.#lastRun;
    ui.resumeNotice.hidden = !(phase === 'idle' && last);
    if (phase === 'idle' && last) {
      const when = last.startedAt
        ? new Date(last.startedAt).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : 'recently';
      const step = STEPS.find((s) => s.key === (last.progress && last.progress.step));
      ui.resumeText.textContent = `Your last sync (started ${when}) ${last.state === 'cancelled' ? 'was cancelled' : 'did not finish'}`
        + `${step ? ` at “${step.label}”` : ''}. Resume it to continue from where it stopped, or start a new one.`;
    }

    // Footer
    const resumable = run ? run.terminal && run.resumable : Boolean(last);
    ui.start.hidden = !showOptions;
    ui.start.disabled = phase === 'starting';
    ui.start.textContent = phase === 'starting' ? 'Starting…' : 'Start sync';
    const cancelling = Boolean(run && (run.cancelRequested || run.state === 'cancelling'));
    ui.cancel.hidden = phase !== 'running';
    ui.cancel.disabled = !run || cancelling;
    ui.cancel.textContent = cancelling ? 'Cancelling…' : 'Cancel sync';
    ui.resume.hidden = !resumable || busy;
    ui.newSync.hidden = !(run && run.terminal);
    // One primary action at a time: Resume wins over Start, Close is the way out of a finished run.
    ui.start.classList.toggle('primary', ui.resume.hidden);
    ui.close.classList.toggle('primary', phase === 'completed');

    if (run) this.#renderRun(run);
  }

  #renderRun(run) {
    const ui = this.#ui;
    const p = run.params;
    const range = p.dateFrom || p.dateTo
      ? `${p.dateFrom ? fmtDay(p.dateFrom) : 'Beginning'} – ${p.dateTo ? fmtDay(p.dateTo) : 'today'}`
      : 'All dates';
    const types = p.types.length === TYPE_KEYS.length ? 'all transaction types'
      : p.types.map((t) => TYPES.find((x) => x.key === t).label).join(', ');
    ui.runParams.textContent = `${range} · ${types} · ${p.full ? 'full reconcile' : 'changes only'}`;

    const percent = Math.max(0, Math.min(100, Math.round(run.percent)));
    ui.percent.textContent = String(percent);
    ui.fill.style.width = `${percent}%`;
    ui.bar.setAttribute('aria-valuenow', String(percent));
    ui.bar.setAttribute('aria-valuetext', `${percent}% — ${run.message || ''}`);
    ui.message.textContent = {
      completed: 'All steps finished.',
      cancelled: 'Stopped on request.',
      failed: 'Stopped by an error.',
      cancelling: 'Cancelling — finishing the current batch…',
      queued: 'Waiting for a worker to pick up the sync…',
    }[run.terminal ? this.#phase : run.cancelRequested ? 'cancelling' : run.state] || run.message || 'Working…';

    for (const s of STEPS) {
      const step = run.steps[s.key];
      const li = ui.steps[s.key];
      li.dataset.state = step.state;
      li.querySelector('.step-meta').textContent = this.#stepMeta(s.key, step);
      if (step.state === 'running') li.setAttribute('aria-current', 'step');
      else li.removeAttribute('aria-current');
      li.querySelector('.step-sr').textContent = `: ${step.state}`;
    }

    for (const key of STAT_KEYS) {
      const card = ui.stats[key];
      const value = card.querySelector('.value');
      const text = fmtCount(run.stats[key]);
      if (value.textContent !== text) {
        value.textContent = text;
        value.classList.remove('bump');
        void value.offsetWidth; // restart the animation
        value.classList.add('bump');
      }
      card.toggleAttribute('data-nonzero', run.stats[key] > 0);
    }

    const failed = this.#phase === 'failed';
    const errText = run.actionError || (failed ? run.error || 'The sync failed.' : '');
    ui.runError.hidden = !errText;
    ui.runErrorText.textContent = errText;
    ui.runErrorHint.textContent = failed && !run.actionError
      ? `What to do: nothing is lost — entries already posted stay posted. ${run.resumable ? 'Press Resume to continue from the last checkpoint' : 'Start a new sync'}`
        + `, or try again later. If it keeps failing, contact support with sync ID ${run.syncId}.`
      : '';

    this.#renderSummary(run);
    this.#renderErrors();
  }

  #stepMeta(key, step) {
    // Document counts mean something only for the three transaction-type steps.
    const counts = TYPE_KEYS.includes(key) && step.total;
    const done = TYPE_KEYS.includes(key) && (step.total || step.processed);
    switch (step.state) {
      case 'running': return counts ? `${fmtCount(step.processed)} / ${fmtCount(step.total)}` : 'Running…';
      case 'done': return [
        done ? `${fmtCount(step.processed)} ${Number(step.processed) === 1 ? 'document' : 'documents'}` : '',
        step.durationMs != null ? fmtDuration(step.durationMs) : '',
      ].filter(Boolean).join(' · ') || 'Done';
      case 'failed': return 'Failed';
      case 'skipped': return 'Skipped';
      default: return 'Waiting';
    }
  }

  #renderSummary(run) {
    const ui = this.#ui;
    const show = this.#phase === 'completed' || this.#phase === 'cancelled';
    ui.summary.hidden = !show;
    if (!show) return;
    ui.summary.dataset.state = this.#phase;
    ui.summaryIcon.innerHTML = this.#phase === 'completed' ? ICONS.check : ICONS.stop;
    const rejected = run.stats.errors;
    ui.summaryTitle.textContent = (this.#phase === 'completed' ? 'Sync complete' : 'Sync cancelled')
      + (rejected ? ` — ${fmtCount(rejected)} ${rejected === 1 ? 'document needs' : 'documents need'} attention` : '');
    ui.summaryDuration.textContent = fmtDuration(run.durationMs);
    const scanned = run.stats.scanned || run.stats.synced + run.stats.skipped + run.stats.errors;
    ui.summaryScanned.textContent = fmtCount(scanned);
    const seconds = Number(run.durationMs) / 1000;
    const rate = run.docsPerSecond ?? (seconds > 0 ? scanned / seconds : null);
    ui.summaryThroughput.textContent = rate != null ? `${fmtCount(Math.round(rate))} docs/s` : '—';

    const v = run.verification;
    const balanced = v ? String(Boolean(v.balanced)) : 'unknown';
    ui.summaryCheck.dataset.balanced = balanced;
    ui.checkIcon.innerHTML = v ? (v.balanced ? ICONS.check : ICONS.alert) : ICONS.scale;
    ui.checkText.textContent = !v
      ? 'Trial balance not checked for this run.'
      : v.balanced
        ? `Trial balance checks out: debits ${fmtDecimal(v.totalDebit)} = credits ${fmtDecimal(v.totalCredit)}.`
        : `Trial balance does not balance: debits ${fmtDecimal(v.totalDebit)}, credits ${fmtDecimal(v.totalCredit)}. Contact support.`;
    ui.checkList.replaceChildren(...[['receivables', 'Accounts receivable', 'open sales invoices'],
      ['payables', 'Accounts payable', 'open purchase invoices and unpaid expenses']]
      .filter(([k]) => v && v[k])
      .map(([k, label, what]) => {
        const li = document.createElement('li');
        li.dataset.ok = String(Boolean(v[k].ok));
        li.textContent = v[k].ok ? `${label} matches the ${what}.` : `${label} does not match the ${what}.`;
        return li;
      }));
  }

  #renderErrors() {
    const ui = this.#ui;
    const run = this.#run;
    const docs = run && run.errorDocs;
    if (docs === this.#shownErrors) return;
    this.#shownErrors = docs;
    ui.errorsPosted.hidden = this.#phase !== 'completed';
    ui.errors.hidden = !(docs && docs.length);
    if (!docs || !docs.length) { ui.errorList.replaceChildren(); return; }
    ui.errorsTitle.textContent = `Rejected documents (${fmtCount(Math.max(docs.length, run.stats.errors))})`;
    const items = docs.slice(0, MAX_LISTED_ERRORS).map((d) => {
      const li = document.createElement('li');
      li.className = 'error-item';
      li.dataset.testid = 'error-item';
      li.dataset.sourceId = d.sourceId ?? '';
      const doc = document.createElement('span');
      doc.className = 'error-doc';
      doc.dataset.testid = 'error-number';
      doc.textContent = d.number || (d.sourceId ? `ID ${d.sourceId}` : 'Unnamed document');
      const type = document.createElement('span');
      type.className = 'error-type';
      type.textContent = SOURCE_LABELS[d.sourceType] || d.sourceType || '';
      const reason = document.createElement('span');
      reason.className = 'error-reason';
      if (d.field) {
        const field = document.createElement('code');
        field.dataset.testid = 'error-field';
        field.textContent = d.field;
        reason.append(field);
      }
      const text = document.createElement('span');
      text.dataset.testid = 'error-reason';
      text.textContent = d.reason || 'Invalid document';
      reason.append(text);
      li.append(doc, type, reason);
      return li;
    });
    if (docs.length > MAX_LISTED_ERRORS) {
      const more = document.createElement('li');
      more.className = 'more';
      more.textContent = `…and ${fmtCount(docs.length - MAX_LISTED_ERRORS)} more.`;
      items.push(more);
    }
    ui.errorList.replaceChildren(...items);
  }
}

if (!customElements.get('ledger-sync-modal')) customElements.define('ledger-sync-modal', LedgerSyncModal);
