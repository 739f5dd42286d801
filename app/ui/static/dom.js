// Small helpers to build the page from data: elements are made with textContent only, never
// from HTML strings, so a flow's or a run's values can never become markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function fill(element, attributes, children) {
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else if (name === 'dataset') {
      Object.assign(element.dataset, value);
    } else if (name === 'style') {
      // Through the CSSOM: the page's content policy refuses style attributes.
      Object.assign(element.style, value);
    } else {
      element.setAttribute(name === 'className' ? 'class' : name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** An HTML element: h('a', {href: '#/runs'}, 'Runs'). */
export function h(tag, attributes, ...children) {
  return fill(document.createElement(tag), attributes, children);
}

/** An SVG element. */
export function svg(tag, attributes, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attributes, children);
}

export function pretty(value) {
  return value === undefined ? '' : JSON.stringify(value, null, 2);
}

export function when(timestamp) {
  if (!timestamp) return '—';
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? String(timestamp) : date.toLocaleString();
}

export function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function badge(status, attributes = {}) {
  return h('span', {class: `badge status-${status}`, 'data-status': status, ...attributes}, status);
}

/** Says `text` to screen readers through the page's polite live region. */
export function announce(text) {
  const region = document.getElementById('announce');
  region.textContent = '';
  requestAnimationFrame(() => { region.textContent = text; });
}

/** A heading that takes the focus when a page is shown, so keyboard and screen-reader users
 * land on the new content rather than at the top of the document. */
export function title(text, ...rest) {
  return h('h1', {tabindex: '-1', id: 'page-title'}, text, ...rest);
}

export function errorBox(error) {
  return h('p', {class: 'error', role: 'alert'}, describe(error));
}

export function describe(error) {
  const detail = error && error.detail !== undefined ? error.detail : error && error.message;
  if (Array.isArray(detail)) {
    return detail.map((item) => `${(item.loc || []).join('.')}: ${item.msg}`).join('; ');
  }
  return typeof detail === 'string' ? detail : JSON.stringify(detail);
}

/** A wide thing (table, picture) that scrolls sideways on a narrow screen. */
export function scroller(label, ...children) {
  return h('div', {class: 'scroller', tabindex: '0', role: 'region', 'aria-label': label}, ...children);
}
