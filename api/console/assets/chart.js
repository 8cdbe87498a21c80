// A small hand-written SVG line chart with time ranges (live, 1h … 1y, custom).
// It asks for as many points as the chart is wide (one per pixel column).
import { h, svg, mount } from './dom.js';

const MINUTE = 60e3;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
export const RANGES = [
  { id: 'live', label: 'Live', span: 15 * MINUTE },
  { id: '1h', label: '1 h', span: HOUR },
  { id: '6h', label: '6 h', span: 6 * HOUR },
  { id: '1d', label: '1 d', span: DAY },
  { id: '1w', label: '1 w', span: 7 * DAY },
  { id: '1mo', label: '1 mo', span: 30 * DAY },
  { id: '1y', label: '1 y', span: 365 * DAY },
  { id: 'custom', label: 'Custom' },
];

const HEIGHT = 200;
const LEFT = 48;
const RIGHT = 8;
const TOP = 8;
const BOTTOM = 22;

function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * MINUTE);
  return d.toISOString().slice(0, 16);
}

function tickLabel(ms, span) {
  const d = new Date(ms);
  if (span <= 10 * MINUTE) return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  if (span <= DAY) return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (span <= 31 * DAY) return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
  return d.toLocaleDateString([], { year: '2-digit', month: 'short' });
}

function fmt(v, decimals) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (decimals !== undefined && decimals !== null) return v.toFixed(decimals);
  return Math.abs(v) >= 1000 || Number.isInteger(v) ? String(Math.round(v * 100) / 100) : v.toPrecision(4);
}

/**
 * Draws `points` ([[ms, value|null], …]) into an SVG of `width` px between `from` and `to`.
 * Returns the SVG element.
 */
export function drawLine(points, { width, from, to, title, units = '', decimals }) {
  const w = Math.max(200, Math.round(width));
  const values = points.map((p) => p[1]).filter((v) => v !== null && Number.isFinite(v));
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!values.length) { lo = 0; hi = 1; }
  if (lo === hi) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.08;
  lo -= pad; hi += pad;
  const x = (t) => LEFT + ((t - from) / Math.max(1, to - from)) * (w - LEFT - RIGHT);
  const y = (v) => TOP + (1 - (v - lo) / (hi - lo)) * (HEIGHT - TOP - BOTTOM);
  let d = '';
  let pen = false;
  for (const [t, v] of points) {
    if (v === null || !Number.isFinite(v)) { pen = false; continue; }
    d += `${pen ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  }
  const last = values.length ? values[values.length - 1] : null;
  const label = values.length
    ? `${title}: ${values.length} points from ${new Date(from).toLocaleString()} to ${new Date(to).toLocaleString()}, `
      + `minimum ${fmt(Math.min(...values), decimals)}${units}, maximum ${fmt(Math.max(...values), decimals)}${units}, last ${fmt(last, decimals)}${units}`
    : `${title}: no data between ${new Date(from).toLocaleString()} and ${new Date(to).toLocaleString()}`;
  const children = [svg('title', {}, label)];
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    children.push(svg('line', { class: 'grid-line', x1: LEFT, x2: w - RIGHT, y1: y(v), y2: y(v) }));
    children.push(svg('text', { x: LEFT - 4, y: y(v) + 4, 'text-anchor': 'end' }, fmt(v, decimals)));
  }
  for (let i = 0; i <= 4; i++) {
    const t = from + ((to - from) * i) / 4;
    children.push(svg('text', { x: x(t), y: HEIGHT - 6, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle' }, tickLabel(t, to - from)));
  }
  if (d) children.push(svg('path', { class: 'line', d }));
  if (!values.length) {
    children.push(svg('text', { x: (LEFT + w - RIGHT) / 2, y: HEIGHT / 2, 'text-anchor': 'middle', class: 'no-data' }, 'No data in this range'));
  }
  if (values.length <= 60) {
    for (const [t, v] of points) {
      if (v !== null && Number.isFinite(v)) children.push(svg('circle', { cx: x(t), cy: y(v), r: 2.5, fill: '#0b5cad' }));
    }
  }
  return svg('svg', { viewBox: `0 0 ${w} ${HEIGHT}`, role: 'img', 'aria-label': label, preserveAspectRatio: 'none', 'data-points': values.length }, ...children);
}

/**
 * A chart widget. `load(from, to, points)` → Promise<{points, note?}> fetches history;
 * `push(ms, value)` appends a live value while the range ends now.
 */
export function chartWidget({ title, units = '', decimals, load }) {
  let range = RANGES[0];
  let points = [];
  let from = 0;
  let to = 0;
  let busy = false;
  const plot = h('div.plot');
  const status = h('p.muted', { 'aria-live': 'polite' });
  const buttons = RANGES.map((r) => h('button', {
    type: 'button', 'aria-pressed': String(r === range), dataset: { range: r.id },
    onclick: () => select(r),
  }, r.label));
  const fromInput = h('input', { type: 'datetime-local', 'aria-label': `${title}: from` });
  const toInput = h('input', { type: 'datetime-local', 'aria-label': `${title}: to` });
  const custom = h('form.row.custom', {
    hidden: true,
    onsubmit: (e) => { e.preventDefault(); refresh(); },
  }, h('div.field', {}, h('label', {}, 'From', fromInput)), h('div.field', {}, h('label', {}, 'To', toInput)),
  h('button', { type: 'submit' }, 'Show'));
  const el = h('div.chart', {},
    h('div.ranges', { role: 'group', 'aria-label': `${title}: time range` }, buttons),
    custom, plot, status);

  function width() { return plot.clientWidth || el.clientWidth || 600; }

  function draw() {
    mount(plot, drawLine(points, { width: width(), from, to, title, units, decimals }));
  }

  function select(r) {
    range = r;
    for (const b of buttons) b.setAttribute('aria-pressed', String(b.dataset.range === r.id));
    custom.hidden = r.id !== 'custom';
    if (r.id === 'custom') {
      const now = Date.now();
      if (!fromInput.value) fromInput.value = localInput(now - DAY);
      if (!toInput.value) toInput.value = localInput(now);
      fromInput.focus();
    }
    refresh();
  }

  async function refresh() {
    if (busy) return;
    if (range.id === 'custom') {
      from = new Date(fromInput.value).getTime();
      to = new Date(toInput.value).getTime();
      if (!(from < to)) { status.textContent = 'Choose a start before the end.'; return; }
    } else {
      to = Date.now();
      from = to - range.span;
    }
    busy = true;
    const n = Math.max(10, Math.floor(width() - LEFT - RIGHT));
    try {
      const reply = await load(from, to, n);
      points = reply.points;
      status.textContent = `${points.length ? `${points.length} points` : 'No data in this range'}${reply.note ? ` · ${reply.note}` : ''}`;
    } catch (err) {
      points = [];
      status.textContent = `Could not load history: ${err.message}`;
    } finally {
      busy = false;
    }
    draw();
  }

  /** A live value: in the live range the window slides and the point is appended. */
  function push(ms, value) {
    if (range.id !== 'live' || !Number.isFinite(value)) return;
    to = Math.max(Date.now(), ms);
    from = to - range.span;
    if (!points.length || points[points.length - 1][0] < ms) points.push([ms, value]);
    points = points.filter((p) => p[0] >= from);
    draw();
  }

  /** Periodic refresh for ranges that end now (not live: live is fed by push). */
  function tick() {
    if (range.id !== 'live' && range.id !== 'custom') refresh();
  }

  return { el, refresh, push, tick };
}
