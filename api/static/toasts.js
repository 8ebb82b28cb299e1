// Toasts: how a sync ended, said in a corner of the page whether or not its dialog is open.
const SHOWN_MS = 15000;

function region() {
  let node = document.getElementById('toasts');
  if (!node) {
    node = document.createElement('div');
    node.id = 'toasts';
    node.className = 'toasts';
    node.dataset.testid = 'toasts';
    node.setAttribute('role', 'region');
    node.setAttribute('aria-label', 'Notifications');
    document.body.append(node);
  }
  return node;
}

/**
 * Shows a toast; `kind` is completed | rejections | failed | cancelled (its data-kind, and its colour).
 * `actions`: [{label, onClick}] buttons; a toast closes on its ✕, on an action, or after a while.
 */
export function showToast({ kind, title, text, syncId, actions = [] }) {
  const toast = document.createElement('div');
  toast.className = 'toast';
  toast.dataset.testid = 'toast';
  toast.dataset.kind = kind;
  if (syncId) toast.dataset.syncId = syncId;
  // Failures interrupt; the rest waits for a pause in what a screen reader is saying.
  toast.setAttribute('role', kind === 'failed' ? 'alert' : 'status');
  const body = document.createElement('div');
  body.className = 'toast-body';
  const heading = document.createElement('strong');
  heading.dataset.testid = 'toast-title';
  heading.textContent = title;
  const line = document.createElement('p');
  line.dataset.testid = 'toast-text';
  line.textContent = text;
  body.append(heading, line);
  const close = () => { clearTimeout(timer); toast.remove(); };
  const buttons = actions.map(({ label, onClick }) => {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'toast-action';
    button.textContent = label;
    button.addEventListener('click', () => { close(); onClick(); });
    return button;
  });
  if (buttons.length) {
    const row = document.createElement('div');
    row.className = 'toast-actions';
    row.append(...buttons);
    body.append(row);
  }
  const dismiss = document.createElement('button');
  dismiss.type = 'button';
  dismiss.className = 'toast-close';
  dismiss.setAttribute('aria-label', 'Dismiss');
  dismiss.textContent = '✕';
  dismiss.addEventListener('click', close);
  toast.append(body, dismiss);
  // Kept while the pointer or the focus is on it, so a reader is not cut off.
  let timer = setTimeout(close, SHOWN_MS);
  const hold = () => clearTimeout(timer);
  const release = () => { clearTimeout(timer); timer = setTimeout(close, SHOWN_MS); };
  toast.addEventListener('pointerenter', hold);
  toast.addEventListener('pointerleave', release);
  toast.addEventListener('focusin', hold);
  toast.addEventListener('focusout', release);
  region().append(toast);
  return toast;
}
