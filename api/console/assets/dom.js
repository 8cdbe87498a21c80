// Small DOM helpers: element building without innerHTML (no injection), status messages.

/** h('tag.class#id', {attr: value, onclick: fn}, ...children) → Element. */
export function h(spec, attrs = {}, ...children) {
  const m = /^([a-z0-9]+)((?:[.#][\w-]+)*)$/i.exec(spec);
  const el = document.createElement(m ? m[1] : spec);
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][\w-]+/g)) {
      if (part[0] === '.') el.classList.add(part.slice(1)); else el.id = part.slice(1);
    }
  }
  if (attrs === null || typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs)) {
    children.unshift(attrs);
    attrs = {};
  }
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'value') el.value = value;
    else if (key === 'checked') el.checked = !!value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** SVG element with attributes. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

/** Replace the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/**
 * Like `mount`, for content refreshed in place (polling): when focus was on an element with a
 * `data-key` inside `el`, the element with the same key gets it back, so keyboard users stay put.
 */
export function remount(el, ...children) {
  const active = document.activeElement;
  const key = active && el.contains(active) ? active.dataset.key : undefined;
  mount(el, ...children);
  if (key !== undefined) {
    const again = [...el.querySelectorAll('[data-key]')].find((x) => x.dataset.key === key);
    if (again) again.focus();
  }
  return el;
}

/** Announce `text` to screen readers through the polite live region. */
export function announce(text) {
  const region = document.getElementById('status');
  if (region) { region.textContent = ''; setTimeout(() => { region.textContent = text; }, 30); }
}

/** An error box (role=alert) for an error or message. */
export function errorBox(err) {
  return h('div.alert', { role: 'alert' }, err && err.message ? err.message : String(err));
}

/** A notice (role=note): what the user's role cannot do, parts that cannot change, … */
export function notice(text) {
  return h('div.notice', { role: 'note' }, text);
}

/** An empty state. */
export function empty(text, ...extra) {
  return h('div.empty', {}, h('p', {}, text), ...extra);
}

/** A labelled form field: label + control (control gets an id). */
let nextId = 0;
export function field(labelText, control, help) {
  if (!control.id) control.id = `f${++nextId}`;
  const parts = [h('label', { for: control.id }, labelText), control];
  if (help) {
    const helpId = `${control.id}-help`;
    control.setAttribute('aria-describedby', helpId);
    parts.push(h('div.muted', { id: helpId }, help));
  }
  return h('div.field', {}, parts);
}

/** A table inside a scrollable, labelled region. */
export function table(caption, headers, rows) {
  return h('div.table-wrap', { role: 'region', 'aria-label': caption, tabindex: '0' },
    h('table', {},
      h('caption.visually-hidden', {}, caption),
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows)));
}

/** Local date-time text of an ISO string or a ms/µs timestamp. */
export function when(value) {
  if (value === null || value === undefined || value === '') return '–';
  const d = typeof value === 'number' ? new Date(value) : new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toLocaleString();
}
