// One sync run in full: what was asked, how long each step took, what it posted, whether the books
// verified, and the documents it rejected (with a CSV of them). Opened from a history row or a toast.
import { KINDS, STEPS } from './ledger-kinds.js';
import { fmtAmount, fmtDecimal, fmtDuration } from './ledger-sync-modal.js';
import { el } from './dom.js';

const nf = new Intl.NumberFormat();
const NOUNS = Object.fromEntries(KINDS.flatMap((k) => [[k.type, k.noun], [k.step, k.noun]]));
// The statistics' columns, in the words of what each counts.
const FIGURES = [
  ['scanned', 'Documents read'], ['synced', 'Entries posted'], ['reversed', 'Entries reversed'],
  ['skipped', 'Documents unchanged'], ['errors', 'Documents rejected'],
];
const CSV_COLUMNS = ['sourceType', 'number', 'date', 'amount', 'sourceId', 'field', 'reason', 'recordedAt'];
const MAX_REJECTIONS = 5000;


function fmtTime(iso) {
  const d = iso ? new Date(iso) : null;
  return d && !Number.isNaN(d.getTime()) ? d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : '—';
}

function fmtDay(day) {
  const d = day && /^\d{4}-\d{2}-\d{2}$/.test(day) ? new Date(`${day}T00:00:00Z`) : null;
  return d ? d.toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' }) : (day || '');
}

function parametersText(p = {}) {
  const range = p.dateFrom || p.dateTo ? `${p.dateFrom ? fmtDay(p.dateFrom) : 'Beginning'} – ${p.dateTo ? fmtDay(p.dateTo) : 'today'}`
    : 'All dates';
  const all = KINDS.map((k) => k.step);
  const types = !Array.isArray(p.types) || all.every((t) => p.types.includes(t)) ? 'all transaction types'
    : p.types.map((t) => (KINDS.find((k) => k.step === t) || { label: t }).label).join(', ');
  const what = p.documents ? 'the documents that changed (continuous sync)' : p.full ? 'full reconcile' : 'changes only';
  return `${range} · ${types} · ${what}`;
}

/** One CSV field, quoted when it must be (RFC 4180), and never read as a formula by a spreadsheet. */
function csvField(value) {
  let text = value == null ? '' : String(value);
  if (/^[=+\-@\t\r]/.test(text) && !/^-?\d+(\.\d+)?$/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function rejectionsCsv(rows) {
  const lines = [CSV_COLUMNS.join(',')];
  for (const row of rows) lines.push(CSV_COLUMNS.map((c) => csvField(row[c])).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
  const link = el('a', { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function section(title, ...children) {
  return el('section', { className: 'rd-section' }, el('h3', { textContent: title }), ...children);
}

function statsTable(stats) {
  const kinds = [['total', 'All documents'], ...KINDS.map((k) => [k.step, k.label])];
  const head = el('tr', {}, el('th', { scope: 'col', textContent: 'Kind' }),
    ...FIGURES.map(([, label]) => el('th', { scope: 'col', className: 'num', textContent: label })));
  const rows = kinds.filter(([key]) => stats[key]).map(([key, label]) => el('tr', { dataset: { testid: 'run-stats-row', kind: key } },
    el('th', { scope: 'row', textContent: label }),
    ...FIGURES.map(([figure, name]) => el('td', { className: 'num', textContent: nf.format(Number(stats[key][figure]) || 0),
      dataset: { label: name, figure } }))));
  return el('table', { className: 'rd-stats', dataset: { testid: 'run-stats' } }, el('thead', {}, head), el('tbody', {}, ...rows));
}

function stepsList(steps) {
  return el('ol', { className: 'rd-steps', dataset: { testid: 'run-steps' } }, ...steps.map((step) => {
    const counted = KINDS.some((k) => k.step === step.name) && (step.processed || step.total);
    return el('li', { dataset: { testid: 'run-step', step: step.name, state: step.state } },
      el('span', { className: 'rd-step-name', textContent: step.label || step.name }),
      el('span', { className: 'rd-step-state', textContent: step.state }),
      el('span', { className: 'rd-step-figures', textContent: [
        counted ? `${nf.format(step.processed)} ${step.processed === 1 ? 'document' : 'documents'}` : '',
        step.durationMs != null ? fmtDuration(step.durationMs) : ''].filter(Boolean).join(' · ') }));
  }));
}

function verificationBlock(v) {
  if (!v) return el('p', { className: 'muted', dataset: { testid: 'run-verification' }, textContent: 'The books were not verified by this run (it did not reach its last step).' });
  const items = [
    [Boolean(v.balanced), `Trial balance: debits ${fmtDecimal(v.totalDebit)}, credits ${fmtDecimal(v.totalCredit)}`
      + (v.balanced ? ' — balanced' : ' — out of balance')],
    ...[['receivables', 'Accounts receivable', 'the open sales invoices'], ['payables', 'Accounts payable', 'the open purchase invoices and unpaid expenses']]
      .filter(([key]) => v[key]).map(([key, label, what]) => [Boolean(v[key].ok),
        `${label} ${fmtDecimal(v[key].ledger)} ${v[key].ok ? 'matches' : 'does not match'} ${what}`]),
  ];
  return el('ul', { className: 'rd-checks', dataset: { testid: 'run-verification', ok: String(Boolean(v.ok)) } },
    ...items.map(([ok, text]) => el('li', { dataset: { ok: String(ok) }, textContent: text })));
}

function rejectionsList(rows, total) {
  if (!rows.length) return el('p', { className: 'muted', textContent: 'None: every document read was valid.' });
  return el('ul', { className: 'rd-rejections', dataset: { testid: 'run-rejections' } }, ...rows.map((row) => el('li', {
    className: 'rd-rejection', dataset: { testid: 'run-rejection', sourceId: row.sourceId ?? '' } },
  el('span', { className: 'rd-rej-number', dataset: { testid: 'run-rejection-number' }, textContent: row.number || 'No number' }),
  el('span', { className: 'rd-rej-meta', dataset: { testid: 'run-rejection-meta' } },
    el('span', { textContent: NOUNS[row.sourceType] || row.sourceType || '' }),
    el('span', { dataset: { testid: 'run-rejection-date' }, textContent: row.date ? fmtDay(row.date) : 'no date' }),
    el('span', { dataset: { testid: 'run-rejection-amount' }, textContent: row.amount != null ? fmtAmount(row.amount) : 'no amount' }),
    el('span', { className: 'rd-rej-id', dataset: { testid: 'run-rejection-id' }, textContent: `ID ${row.sourceId}` })),
  el('span', { className: 'rd-rej-reason' },
    row.field ? el('code', { textContent: row.field }) : null,
    el('span', { dataset: { testid: 'run-rejection-reason' }, textContent: row.reason || 'Invalid document' })))),
  ...(total > rows.length ? [el('li', { className: 'muted', textContent: `…and ${nf.format(total - rows.length)} more (in the CSV).` })] : []));
}

function dialogNode() {
  let dialog = document.getElementById('run-details');
  if (!dialog) {
    dialog = el('dialog', { id: 'run-details', className: 'run-details', dataset: { testid: 'run-details' } });
    dialog.setAttribute('aria-labelledby', 'run-details-title');
    dialog.addEventListener('click', (e) => { if (e.target === dialog) dialog.close(); }); // the backdrop
    document.body.append(dialog);
  }
  return dialog;
}

/** Opens the run `syncId` (of the token's vendor). `getJson(path)` answers {ok, status, body} with the token sent. */
export async function openRunDetails(syncId, getJson) {
  const dialog = dialogNode();
  const close = el('button', { type: 'button', className: 'rd-close', textContent: '✕', dataset: { testid: 'run-details-close' } });
  close.setAttribute('aria-label', 'Close');
  close.addEventListener('click', () => dialog.close());
  const title = el('h2', { id: 'run-details-title', textContent: 'Sync run' });
  const body = el('div', { className: 'rd-body' }, el('p', { className: 'muted', textContent: 'Loading…' }));
  dialog.dataset.syncId = syncId;
  dialog.replaceChildren(el('header', { className: 'rd-head' }, title, close), body);
  if (!dialog.open) dialog.showModal();

  const id = encodeURIComponent(syncId);
  const [runRes, errRes] = await Promise.all([getJson(`/api/ledger/sync-status/${id}`),
    getJson(`/api/ledger/sync-runs/${id}/errors?limit=${MAX_REJECTIONS}`)]);
  if (dialog.dataset.syncId !== syncId) return; // another run was opened meanwhile
  if (!runRes.ok || !runRes.body) {
    body.replaceChildren(el('p', { className: 'alert', role: 'alert', textContent: runRes.status === 404
      ? 'This sync is not in your history.' : `The sync could not be read (HTTP ${runRes.status || 'offline'}). Try again.` }));
    return;
  }
  const run = runRes.body;
  const rows = errRes.ok && errRes.body && Array.isArray(errRes.body.errors) ? errRes.body.errors : [];
  const rejected = Math.max(Number(run.errorsCount) || 0, Number(run.stats?.total?.errors) || 0, rows.length);
  title.textContent = `Sync of ${fmtTime(run.startedAt)}`;
  const facts = el('dl', { className: 'rd-facts', dataset: { testid: 'run-facts' } },
    ...[['State', run.state], ['Duration', fmtDuration(run.durationMs)], ['Attempts', nf.format(run.attempts || 1)],
      ['Speed', run.documentsPerSecond != null ? `${nf.format(Math.round(run.documentsPerSecond))} docs/s` : '—']]
      .map(([name, value]) => el('div', {}, el('dt', { textContent: name }), el('dd', { textContent: value, dataset: { testid: `run-fact-${name.toLowerCase()}` } }))));
  const csv = el('button', { type: 'button', className: 'rd-csv', textContent: 'Download CSV', dataset: { testid: 'run-rejections-csv' }, disabled: !rows.length });
  csv.addEventListener('click', () => download(`rejected-${syncId}.csv`, rejectionsCsv(rows)));
  body.replaceChildren(...[
    el('p', { className: 'rd-params', dataset: { testid: 'run-parameters' }, textContent: parametersText(run.parameters) }),
    el('p', { className: 'rd-id muted', textContent: `Sync ID ${run.syncId}` }),
    facts,
    run.error ? el('p', { className: 'alert', role: 'alert', dataset: { testid: 'run-details-error' }, textContent: run.error }) : null,
    section('Statistics', el('div', { className: 'rd-scroll' }, statsTable(run.stats || {}))),
    section('Steps', stepsList(run.steps || [])),
    section('Verification', verificationBlock(run.verification)),
    el('section', { className: 'rd-section' },
      el('div', { className: 'rd-section-head' }, el('h3', { textContent: `Rejected documents (${nf.format(rejected)})` }), csv),
      rejectionsList(rows.slice(0, 500), rows.length)),
  ].filter(Boolean));
}
