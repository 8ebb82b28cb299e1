// Reading the books (SPEC §8): the trial balance as of a date, an account's ledger a page at a time,
// each line's document history, profit and loss, the balance sheet, aging, and the export.
// Amounts arrive as decimal strings and are only ever formatted, never turned into floats.
import { fmtDay, fmtDecimal } from './ledger-sync-modal.js';
import { el } from './dom.js';

const $ = (id) => document.getElementById(id);
const LEDGER_PAGE = 50;
const BUCKETS = ['0-30', '31-60', '61-90', '91+'];
const REASONS = {
  voided: 'Reversed: the document was voided', cancelled: 'Reversed: the document was cancelled',
  deleted: 'Reversed: the document was deleted', changed: 'Reversed: the document changed',
  'payment removed': 'Reversed: the payment was removed',
};

let token = '';
let chart = null; // key → {code, name, type}, from /accounts and the trial balance
const latest = {}; // view → number of its newest request: an older answer arriving late is dropped
const ledger = { account: '', cursor: null, lines: 0 };


async function request(path) {
  try {
    return await fetch(path, { headers: { Accept: 'application/json', Authorization: `Bearer ${token}` } });
  } catch {
    return null;
  }
}

/** GET a JSON view; `{stale: true}` when a newer request for the same view was made meanwhile. */
async function getView(view, path) {
  const mine = (latest[view] = (latest[view] || 0) + 1);
  const res = await request(path);
  let body = null;
  try { body = res && await res.json(); } catch { /* not JSON */ }
  if (latest[view] !== mine) return { stale: true };
  if (res && res.ok) return { body };
  return { error: problem(res, body) };
}

function problem(res, body) {
  if (!res) return 'the server cannot be reached; check your connection and try again.';
  const detail = body && body.detail;
  if (Array.isArray(detail) && detail[0]) return `${(detail[0].loc || []).slice(-1)[0] || 'input'}: ${detail[0].msg}`;
  const message = (detail && detail.message) || (typeof detail === 'string' && detail);
  return message || `HTTP ${res.status}; try again.`;
}

function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v);
  return pairs.length ? `?${new URLSearchParams(pairs)}` : '';
}

function money(value) {
  return el('td', { className: 'num', textContent: value == null || value === '' ? '' : fmtDecimal(value) });
}

function isZero(value) {
  return cents(value) === 0n;
}

function label(key) {
  const info = (chart && chart[key]) || {};
  return { name: info.name || key, detail: [info.code, info.type].filter(Boolean).join(' · ') || key };
}

function accountCell(key, pick) {
  const { name, detail } = label(key);
  const title = pick ? el('button', { type: 'button', className: 'pick', textContent: name }) : el('span', { textContent: name });
  return el('td', { className: 'acct' }, title, el('small', { textContent: detail }));
}

function message(tbody, colSpan, text) {
  tbody.replaceChildren(el('tr', {}, el('td', { className: 'empty', colSpan, textContent: text })));
}

function setBusy(table, busy) {
  table.setAttribute('aria-busy', String(busy));
  table.dataset.state = busy ? 'loading' : 'ready';
}

/** Whether the table already shows this very question's answer: a refresh (a sync finished, the live
 * watcher posted) then dims it while reading again; any other question clears it first. */
function refreshing(table, path) {
  const same = table.dataset.shown === path && table.dataset.state === 'ready';
  if (!same) delete table.dataset.shown;
  return same;
}

function showError(text) {
  $('books-error').textContent = text;
  $('books-error').hidden = !text;
}

function asOfText(day) {
  return day ? `as of ${fmtDay(day)}` : 'current (every entry posted)';
}

function periodText(from, to) {
  if (from && to) return `${fmtDay(from)} – ${fmtDay(to)}`;
  if (from) return `from ${fmtDay(from)}`;
  return to ? `through ${fmtDay(to)}` : 'all dates';
}

async function loadChart() {
  const res = await getView('chart', '/api/ledger/accounts');
  if (res.stale) return;
  if (res.error) return showError(`Could not load the chart of accounts: ${res.error}`);
  chart = { ...(chart || {}), ...Object.fromEntries(res.body.accounts.map((a) => [a.key, a])) };
  const select = $('ledger-account');
  select.replaceChildren(el('option', { value: '', textContent: 'Choose an account' }),
    ...res.body.accounts.map((a) => el('option', { value: a.key, textContent: [a.code, a.name].filter(Boolean).join(' ') })));
  select.value = ledger.account;
}

// ---------- trial balance ----------

/** Exact cents of a decimal string, for comparing totals without floats. */
function cents(value) {
  const m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(String(value ?? '').trim());
  return m ? BigInt(`${m[1]}${m[2] || '0'}${(m[3] || '').padEnd(2, '0').slice(0, 2)}`) : null;
}

function renderTrialBalance(tb) {
  chart = { ...(chart || {}), ...(tb.accounts || {}) };
  const keys = Object.keys(tb.balances || {}).filter((k) => !isZero(tb.balances[k]));
  keys.sort((a, b) => String(label(a).detail).localeCompare(String(label(b).detail), undefined, { numeric: true }));
  const rows = keys.map((key) => {
    const value = String(tb.balances[key]);
    const credit = value.startsWith('-');
    const amount = value.replace(/^-/, '');
    return el('tr', { dataset: { testid: 'trial-balance-row', account: key, pick: '' } },
      accountCell(key, true), money(credit ? '' : amount), money(credit ? amount : ''));
  });
  if (rows.length) $('tb-body').replaceChildren(...rows);
  else message($('tb-body'), 3, 'No entries posted yet.');
  $('tb-debit').textContent = fmtDecimal(tb.totalDebit);
  $('tb-credit').textContent = fmtDecimal(tb.totalCredit);
  const balanced = cents(tb.totalDebit) === cents(tb.totalCredit);
  const status = $('tb-status');
  status.hidden = false;
  status.textContent = balanced ? 'Balanced' : 'Out of balance';
  status.dataset.tone = balanced ? 'ok' : 'bad';
}

export async function loadTrialBalance() {
  const asOf = $('tb-as-of').value;
  const table = $('tb-table');
  const path = `/api/ledger/trial-balance${query({ asOf })}`;
  const again = refreshing(table, path);
  setBusy(table, true);
  table.dataset.asOf = asOf;
  $('tb-as-of-label').textContent = `${again ? 'Updating' : 'Loading'} the trial balance ${asOfText(asOf)}…`;
  if (!again) {
    message($('tb-body'), 3, 'Loading…');
    $('tb-debit').textContent = '—';
    $('tb-credit').textContent = '—';
    $('tb-status').hidden = true;
  }
  const res = await getView('tb', path);
  if (res.stale) return;
  if (res.error) {
    message($('tb-body'), 3, `Could not load the trial balance: ${res.error}`);
    for (const id of ['tb-debit', 'tb-credit']) $(id).textContent = '—';
    $('tb-status').hidden = true;
    table.dataset.state = 'error';
    $('tb-as-of-label').textContent = '';
    return;
  }
  renderTrialBalance(res.body);
  setBusy(table, false);
  table.dataset.shown = path;
  $('tb-as-of-label').textContent = `Figures ${asOfText(asOf)}. Select an account to open its ledger.`;
}

// ---------- account ledger ----------

function documentCell(line) {
  const source = line.source;
  const name = source.number || `ID ${source.id}`;
  const cell = el('td', { className: 'acct' }, el('button', { type: 'button', className: 'pick', textContent: name }));
  if (line.reversalOf) cell.append(el('span', { className: 'tag', textContent: 'reversal' }));
  cell.append(el('small', { textContent: source.paymentId ? `${source.type} · payment ${source.paymentId}` : source.type }));
  return cell;
}

/** data-label heads each figure when the ledger's rows turn into cards on phones. */
function labelled(cell, text) {
  cell.dataset.label = text;
  return cell;
}

function ledgerRow(line) {
  return el('tr', {
    dataset: { testid: 'ledger-row', pick: '', entryId: line.entryId, sourceType: line.source.type, sourceKey: line.source.key },
  }, el('td', { textContent: fmtDay(line.date), title: line.date }), documentCell(line),
  labelled(money(isZero(line.debit) ? '' : line.debit), 'Debit'),
  labelled(money(isZero(line.credit) ? '' : line.credit), 'Credit'),
  el('td', {
    className: 'num', textContent: fmtDecimal(line.balance),
    dataset: { testid: 'ledger-balance', value: line.balance, label: 'Balance' },
  }));
}

async function loadLedger(more = false) {
  const table = $('ledger-table');
  const body = $('ledger-body');
  if (!ledger.account) return;
  const from = $('ledger-from').value;
  const to = $('ledger-to').value;
  setBusy(table, true);
  table.dataset.account = ledger.account;
  $('ledger-more').disabled = true;
  if (!more) {
    ledger.cursor = null;
    ledger.lines = 0;
    message(body, 5, 'Loading…');
    $('ledger-opening').textContent = '—';
    $('ledger-closing').textContent = '—';
    $('ledger-count').textContent = '';
    $('ledger-more').hidden = true;
  }
  const path = `/api/ledger/accounts/${encodeURIComponent(ledger.account)}/ledger`
    + query({ from, to, limit: String(LEDGER_PAGE), cursor: more ? ledger.cursor : '' });
  const res = await getView('ledger', path);
  if (res.stale) return;
  $('ledger-more').disabled = false;
  if (res.error) {
    table.dataset.state = 'error';
    if (!more) message(body, 5, `Could not load the ledger: ${res.error}`);
    else showError(`Could not load more lines: ${res.error}`);
    return;
  }
  const page = res.body;
  const rows = page.lines.map(ledgerRow);
  if (more) body.append(...rows);
  else if (rows.length) body.replaceChildren(...rows);
  else message(body, 5, 'No lines in this period.');
  ledger.cursor = page.nextCursor;
  ledger.lines += page.lines.length;
  $('ledger-opening').textContent = fmtDecimal(page.openingBalance);
  $('ledger-closing').textContent = fmtDecimal(page.closingBalance);
  $('ledger-count').textContent = `${label(ledger.account).name}, ${periodText(from, to)}: `
    + `${ledger.lines.toLocaleString()} line${ledger.lines === 1 ? '' : 's'}${page.nextCursor ? ' so far' : ''}`;
  $('ledger-more').hidden = !page.nextCursor;
  setBusy(table, false);
}

function openLedger(account) {
  ledger.account = account;
  if (![...$('ledger-account').options].some((o) => o.value === account)) {
    $('ledger-account').append(el('option', { value: account, textContent: label(account).name }));
  }
  $('ledger-account').value = account;
  for (const row of $('tb-body').querySelectorAll('tr[data-account]')) {
    row.toggleAttribute('data-selected', row.dataset.account === account);
  }
  selectTab('ledger');
  $('books').scrollIntoView({ block: 'start' });
  loadLedger();
}

// ---------- document history ----------

function historyItem(entry) {
  const reversal = Boolean(entry.reversalOf);
  const head = el('header', {},
    el('strong', { textContent: fmtDay(entry.date) }),
    el('span', {
      className: 'badge', dataset: { tone: reversal ? 'bad' : 'ok', testid: 'history-kind' },
      textContent: reversal ? (REASONS[entry.reason] || `Reversed: ${entry.reason || 'no reason recorded'}`) : 'Posted',
    }));
  if (entry.late) head.append(el('span', { className: 'badge', dataset: { tone: 'warn' }, textContent: 'late' }));
  const about = [];
  if (entry.source.paymentId) about.push(`Payment ${entry.source.paymentId}.`);
  if (reversal) about.push(`Reverses entry ${entry.reversalOf}.`);
  if (entry.changed && entry.changed.length) about.push(`Changed: ${entry.changed.join(', ')}.`);
  about.push(entry.syncId ? `Written by sync ${entry.syncId}.` : 'Written outside a sync.');
  const lines = el('tbody', {}, ...entry.lines.map((line) => el('tr', {},
    accountCell(line.account, false), money(isZero(line.debit) ? '' : line.debit), money(isZero(line.credit) ? '' : line.credit))));
  return el('li', { dataset: reversal ? { testid: 'history-entry', reversal: '', reason: entry.reason || '' } : { testid: 'history-entry' } },
    head, el('p', { className: 'muted sync', textContent: about.join(' ') }),
    el('div', { className: 'table-wrap' }, el('table', {},
      el('thead', {}, el('tr', {}, el('th', { scope: 'col', textContent: 'Account' }),
        el('th', { scope: 'col', className: 'num', textContent: 'Debit' }), el('th', { scope: 'col', className: 'num', textContent: 'Credit' }))),
      lines)));
}

async function openHistory(sourceType, sourceKey, number) {
  const dialog = $('doc-history');
  $('doc-history-title').textContent = `History of ${number}`;
  $('doc-history-sub').textContent = 'Loading…';
  $('doc-history-list').replaceChildren();
  dialog.setAttribute('aria-busy', 'true');
  if (!dialog.open) dialog.showModal();
  const res = await getView('history', `/api/ledger/documents/${encodeURIComponent(sourceType)}/${encodeURIComponent(sourceKey)}/history`);
  if (res.stale) return;
  dialog.setAttribute('aria-busy', 'false');
  if (res.error) {
    $('doc-history-sub').textContent = `Could not load the history: ${res.error}`;
    return;
  }
  const entries = res.body.entries;
  const reversals = entries.filter((e) => e.reversalOf).length;
  $('doc-history-sub').textContent = `${sourceType} ${res.body.sourceId}: ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}`
    + ` in the order written, ${reversals} reversal${reversals === 1 ? '' : 's'}.`;
  $('doc-history-list').replaceChildren(...entries.map(historyItem));
}

// ---------- reports ----------

/** A report table: `groups` of [title, {account: amount}, total label, total, key] (a group without a
 * total, as the balance sheet's liabilities and equity, ends without one), then the closing rows. */
function renderReport(table, groups, closing) {
  const parts = [el('thead', {}, el('tr', {}, el('th', { scope: 'col', textContent: 'Account' }),
    el('th', { scope: 'col', className: 'num', textContent: 'Amount' })))];
  for (const [title, amounts, totalLabel, total, key] of groups) {
    const rows = Object.keys(amounts).sort((a, b) => label(a).detail.localeCompare(label(b).detail, undefined, { numeric: true }))
      .map((account) => el('tr', { dataset: { account } }, accountCell(account, false), money(amounts[account])));
    if (!rows.length) rows.push(el('tr', {}, el('td', { className: 'muted', colSpan: 2, textContent: 'None' })));
    if (totalLabel) {
      rows.push(el('tr', { className: 'total', dataset: { total: key } }, el('td', { textContent: totalLabel }),
        el('td', { className: 'num', textContent: fmtDecimal(total), dataset: { value: total } })));
    }
    parts.push(el('tbody', {}, el('tr', {}, el('th', { scope: 'rowgroup', colSpan: 2, textContent: title })), ...rows));
  }
  parts.push(el('tfoot', {}, ...closing.map(([text, value, key]) => el('tr', { className: 'grand', dataset: { total: key } },
    el('td', { textContent: text }), el('td', { className: 'num', textContent: fmtDecimal(value), dataset: { value } })))));
  table.replaceChildren(...parts);
}

/** Loads one report: clears the table and says which period is loading, then shows it or the error. */
async function loadReport(view, path, labelText, render) {
  const table = $(`${view}-table`);
  const again = refreshing(table, path);
  setBusy(table, true);
  if (!again) table.replaceChildren(el('tbody', {}, el('tr', {}, el('td', { className: 'empty', textContent: 'Loading…' }))));
  $(`${view}-label`).textContent = `${again ? 'Updating' : 'Loading'} ${labelText}…`;
  const res = await getView(view, path);
  if (res.stale) return;
  if (res.error) {
    table.dataset.state = 'error';
    table.replaceChildren(el('tbody', {}, el('tr', {}, el('td', { className: 'empty', textContent: `Could not load it: ${res.error}` }))));
    $(`${view}-label`).textContent = '';
    return;
  }
  render(table, res.body);
  setBusy(table, false);
  table.dataset.shown = path;
  $(`${view}-label`).textContent = `Figures for ${labelText}.`;
}

function loadProfitAndLoss() {
  const from = $('pnl-from').value;
  const to = $('pnl-to').value;
  const table = $('pnl-table');
  table.dataset.from = from;
  table.dataset.to = to;
  return loadReport('pnl', `/api/ledger/reports/profit-and-loss${query({ from, to })}`, periodText(from, to),
    (t, r) => renderReport(t, [['Income', r.income, 'Total income', r.totalIncome, 'totalIncome'],
      ['Expenses', r.expenses, 'Total expenses', r.totalExpenses, 'totalExpenses']],
    [['Net profit', r.netProfit, 'netProfit']]));
}

function loadBalanceSheet() {
  const asOf = $('bs-as-of').value;
  $('bs-table').dataset.asOf = asOf;
  return loadReport('bs', `/api/ledger/reports/balance-sheet${query({ asOf })}`, asOfText(asOf),
    (t, r) => renderReport(t, [['Assets', r.assets, 'Total assets', r.totalAssets, 'totalAssets'],
      ['Liabilities', r.liabilities], ['Equity', r.equity]],
    [['Total liabilities and equity', r.totalLiabilitiesAndEquity, 'totalLiabilitiesAndEquity']]));
}

function renderAging(table, aging) {
  const head = el('thead', {}, el('tr', {}, el('th', { scope: 'col', textContent: aging.side === 'payable' ? 'Supplier' : 'Customer' }),
    ...BUCKETS.map((b) => el('th', { scope: 'col', className: 'num', textContent: `${b} days` })),
    el('th', { scope: 'col', className: 'num', textContent: 'Total' })));
  const rows = aging.parties.map((row) => el('tr', { dataset: { testid: 'aging-row' } },
    el('td', { className: 'acct' }, el('span', { textContent: row.party.name }), el('small', { textContent: row.party.id || '' })),
    ...BUCKETS.map((b) => money(row.buckets[b] || '0.00')), money(row.total)));
  if (!rows.length) rows.push(el('tr', {}, el('td', { className: 'empty', colSpan: 6, textContent: 'Nothing open on this date.' })));
  const foot = el('tfoot', {}, el('tr', { dataset: { total: 'total' } }, el('td', { textContent: 'Total' }),
    ...BUCKETS.map((b) => money(aging.buckets[b] || '0.00')),
    el('td', { className: 'num', textContent: fmtDecimal(aging.total), dataset: { value: aging.total } })));
  table.replaceChildren(head, el('tbody', {}, ...rows), foot);
}

function loadAging() {
  const side = $('aging-side').value;
  const asOf = $('aging-as-of').value;
  $('aging-table').dataset.side = side;
  $('aging-table').dataset.asOf = asOf;
  return loadReport('aging', `/api/ledger/reports/aging${query({ side, asOf })}`,
    `${side === 'payable' ? 'payables' : 'receivables'} ${asOf ? asOfText(asOf) : 'as of today'}`, renderAging);
}

// ---------- tabs, export, wiring ----------

const TABS = { ledger: () => loadLedger(), pnl: loadProfitAndLoss, bs: loadBalanceSheet, aging: loadAging };
let activeTab = 'ledger';

function selectTab(name) {
  activeTab = name;
  for (const key of Object.keys(TABS)) {
    const tab = $(`tab-${key}`);
    tab.setAttribute('aria-selected', String(key === name));
    tab.tabIndex = key === name ? 0 : -1;
    $(`panel-${key}`).hidden = key !== name;
  }
}

async function download(button) {
  const format = button.dataset.export;
  const text = button.textContent;
  button.disabled = true;
  button.textContent = 'Preparing…';
  showError('');
  const res = await request(`/api/ledger/export${query({ format })}`);
  try {
    if (!res || !res.ok) {
      let body = null;
      try { body = res && await res.json(); } catch { /* not JSON */ }
      showError(`Could not export the books: ${problem(res, body)}`);
      return;
    }
    const blob = await res.blob();
    const named = /filename="([^"]+)"/.exec(res.headers.get('Content-Disposition') || '');
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: named ? named[1] : `books.${format}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } finally {
    button.disabled = false;
    button.textContent = text;
  }
}

/** A new token (another vendor): nothing of the previous one's books may stay on screen; `refreshBooks` reads. */
export function setBooksToken(value) {
  token = value;
  chart = null;
  ledger.account = '';
  ledger.cursor = null;
  showError('');
  message($('ledger-body'), 5, 'Select an account in the trial balance, or choose one above.');
  for (const id of ['ledger-opening', 'ledger-closing']) $(id).textContent = '—';
  $('ledger-count').textContent = '';
  $('ledger-more').hidden = true;
  for (const view of ['pnl', 'bs', 'aging']) {
    $(`${view}-table`).replaceChildren();
    delete $(`${view}-table`).dataset.shown;
    $(`${view}-label`).textContent = '';
  }
  delete $('tb-table').dataset.shown;
}

/** With a new token or after a sync: every figure on screen is read again. */
export function refreshBooks() {
  loadChart();
  TABS[activeTab]();
  return loadTrialBalance();
}

$('tb-form').addEventListener('change', () => { if (token) loadTrialBalance(); });
$('tb-form').addEventListener('submit', (e) => e.preventDefault());
$('tb-body').addEventListener('click', (e) => {
  const row = e.target.closest('tr[data-account]');
  if (row) openLedger(row.dataset.account);
});
$('ledger-body').addEventListener('click', (e) => {
  const row = e.target.closest('tr[data-entry-id]');
  if (row) openHistory(row.dataset.sourceType, row.dataset.sourceKey, row.querySelector('.pick').textContent);
});
$('ledger-account').addEventListener('change', (e) => {
  ledger.account = e.target.value;
  loadLedger();
});
$('ledger-more').addEventListener('click', () => loadLedger(true));
for (const [form, load] of [['ledger-form', () => loadLedger()], ['pnl-form', loadProfitAndLoss], ['bs-form', loadBalanceSheet],
  ['aging-form', loadAging]]) {
  $(form).addEventListener('submit', (e) => e.preventDefault());
  $(form).addEventListener('change', (e) => { if (e.target.id !== 'ledger-account' && token) load(); });
}
for (const key of Object.keys(TABS)) {
  $(`tab-${key}`).addEventListener('click', () => {
    selectTab(key);
    if (token) TABS[key]();
  });
}
// "Current" / "All dates": empty the form's dates and read the figures again.
for (const button of document.querySelectorAll('[data-clear]')) {
  button.addEventListener('click', () => {
    for (const id of button.dataset.clear.split(' ')) $(id).value = '';
    button.form.dispatchEvent(new Event('change'));
  });
}
// Arrow keys move between the tabs (the tablist pattern).
document.querySelector('#books [role="tablist"]').addEventListener('keydown', (e) => {
  const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
  if (!step) return;
  const keys = Object.keys(TABS);
  const next = $(`tab-${keys[(keys.indexOf(activeTab) + step + keys.length) % keys.length]}`);
  next.focus();
  next.click();
});
$('doc-history-close').addEventListener('click', () => $('doc-history').close());
for (const button of document.querySelectorAll('[data-export]')) button.addEventListener('click', () => download(button));
