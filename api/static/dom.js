// Building the page's elements: one helper for every module of the web UI.

/** `el('td', {className: 'num', dataset: {testid: 'x'}}, child, …)`: properties where the element has
 * them, attributes otherwise; null children are left out. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((child) => child != null));
  return node;
}
