// Device dashboard: widgets from the template (saved layout, or defaults from its datastreams),
// values refreshed every 2 s, charts over the history, event timeline, control widgets that write.
import { get, optional, blynk, sql, ApiError } from '../api.js';
import { h, mount, notice, errorBox, empty, when } from '../dom.js';
import { chartWidget } from '../chart.js';
import * as w from '../widgets.js';

const POLL_MS = 2000;

function toMs(t) {
  if (typeof t === 'number') return t > 1e14 ? t / 1000 : t;
  if (typeof t !== 'string') return NaN;
  return Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(t) ? t : `${t}Z`);
}

/** Points of a history reply, whatever its exact shape ([[t, v]], [{ts, value}], {points: …}). */
function parsePoints(data) {
  const list = Array.isArray(data) ? data : (data && (data.points || data.data || data.values)) || [];
  return list.map((p) => (Array.isArray(p)
    ? [toMs(p[0]), p[1] === null ? null : Number(p[1])]
    : [toMs(p.ts ?? p.t ?? p.time ?? p.bucket), (p.value ?? p.v ?? p.avg ?? null) === null ? null : Number(p.value ?? p.v ?? p.avg)]))
    .filter((p) => Number.isFinite(p[0]));
}

const sqlTime = (ms) => `TIMESTAMP '${new Date(ms).toISOString()}'`;

export async function render(main, { params }) {
  const id = Number(params[0]);
  let device;
  try {
    device = await get(`/api/v1/devices/${id}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      mount(main, h('h1', {}, 'Device not found'), h('p', {}, `There is no device ${id} in your organization. `,
        h('a', { href: '/devices', 'data-link': '' }, 'Back to the devices')));
      return undefined;
    }
    throw err;
  }
  const template = await get(`/api/v1/templates/${encodeURIComponent(device.template_id)}`);
  const streams = new Map(template.datastreams.map((d) => [d.pin, d]));
  const saved = template.dashboard?.widgets || template.layout?.widgets || template.widgets;
  const layout = Array.isArray(saved) && saved.length ? saved : w.defaultLayout(template.datastreams);
  let historyVia = null; // 'api' or 'sql'

  async function load(pin, from, to, points) {
    if (historyVia !== 'sql') {
      const reply = await optional(`/api/v1/devices/${id}/history?pin=V${pin}&from=${Math.floor(from)}&to=${Math.ceil(to)}&points=${points}&agg=avg`);
      if (!reply.missing) { historyVia = 'api'; return { points: parsePoints(reply.data) }; }
      historyVia = 'sql';
    }
    // Until the history API ships: the same downsampling with SQL (bucket = range / width).
    const stepUs = Math.max(1000, Math.floor(((to - from) * 1000) / points));
    const rows = await sql(`SELECT date_bin(INTERVAL '${stepUs} microseconds', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS t, avg(value) AS v
FROM telemetry WHERE device_id = ${id} AND pin = ${Number(pin)} AND value IS NOT NULL
AND ts >= ${sqlTime(from)} AND ts < ${sqlTime(to)} GROUP BY 1 ORDER BY 1`);
    return { points: rows.map((r) => [toMs(r.t), r.v === null ? null : Number(r.v)]), note: 'history API not on this server yet: downsampled with SQL' };
  }

  const write = (pin) => (value) => blynk.write(device.token, pin, value);
  const widgets = [];
  const charts = [];
  for (const spec of layout) {
    const ds = streams.get(Number(spec.pin));
    const title = spec.title || (ds ? `${ds.name} (V${ds.pin})` : `V${spec.pin}`);
    let widget;
    switch (spec.type) {
      case 'gauge': widget = w.gauge(title, ds || {}); break;
      case 'led': widget = w.led(title); break;
      case 'switch': case 'button': widget = w.toggle(title, write(spec.pin)); break;
      case 'slider': widget = w.slider(title, ds || {}, write(spec.pin)); break;
      case 'terminal': widget = w.terminal(title, write(spec.pin)); break;
      case 'map': widget = w.map(title); break;
      case 'chart': {
        const chart = chartWidget({ title, units: ds?.units || '', decimals: ds?.decimals ?? undefined, load: (f, t, n) => load(spec.pin, f, t, n) });
        charts.push(chart);
        widget = { el: h('section.card.widget.wide', { 'aria-label': `${title} chart`, dataset: { widget: 'chart', pin: spec.pin } }, h('h3', {}, `${title} chart`), chart.el), update() {} };
        break;
      }
      default: widget = w.valueDisplay(title, ds);
    }
    widget.el.dataset.pin = spec.pin;
    widgets.push({ pin: Number(spec.pin), widget });
  }

  const status = h('span.badge', {}, 'checking…');
  const tokenText = h('code.token', { hidden: true }, device.token);
  const reveal = h('button.link', {
    type: 'button', 'aria-expanded': 'false',
    onclick() { tokenText.hidden = !tokenText.hidden; reveal.setAttribute('aria-expanded', String(!tokenText.hidden)); reveal.textContent = tokenText.hidden ? 'Show auth token' : 'Hide auth token'; },
  }, 'Show auth token');
  const updated = h('p.muted', { 'aria-live': 'off' });
  const problems = h('div');
  const timeline = h('section.card', { 'aria-labelledby': 'timeline-title' }, h('h2#timeline-title', {}, 'Event timeline'));

  mount(main,
    h('h1', {}, device.name),
    h('div.card', {},
      h('p', {}, 'Status: ', status, ' · Template: ', h('a', { href: `/templates/${template.id}`, 'data-link': '' }, template.name),
        ` · Device id ${device.id} · Created ${when(device.created_at)}`),
      h('p', {}, reveal, ' ', tokenText)),
    Array.isArray(saved) && saved.length ? null : notice('This template has no saved dashboard layout: showing default widgets for its datastreams.'),
    problems,
    widgets.length ? h('div.grid', { id: 'dashboard', 'aria-label': 'Dashboard' }, widgets.map((x) => x.widget.el))
      : empty('The template has no datastreams, so there is nothing to show.', h('a', { href: `/templates/${template.id}`, 'data-link': '' }, 'Edit the template')),
    updated,
    timeline);

  const pins = [...new Set(template.datastreams.map((d) => d.pin))];
  let valuesApi = true; // GET /api/v1/devices/{id}/values until the server says it has none
  const stamps = {};
  async function readValues() {
    if (valuesApi) {
      const reply = await optional(`/api/v1/devices/${id}/values`);
      if (!reply.missing) {
        const out = {};
        for (const p of pins) {
          const entry = reply.data.values?.[`V${p}`];
          out[p] = entry ? entry.value : null;
          if (entry) stamps[p] = entry.ts;
        }
        return out;
      }
      valuesApi = false;
    }
    return blynk.values(device.token, pins).catch((err) => {
      if (pins.length === 1 && err.message === 'No data.') return { [pins[0]]: null };
      throw err;
    });
  }
  let stopped = false;
  async function poll() {
    try {
      const [online, values] = await Promise.all([
        blynk.connected(device.token),
        readValues(),
      ]);
      status.textContent = online ? 'online' : 'offline';
      status.className = `badge ${online ? 'online' : 'offline'}`;
      const now = Date.now();
      for (const { pin, widget } of widgets) widget.update(values[pin] ?? null, stamps[pin] ?? null);
      updated.textContent = `Values refreshed every ${POLL_MS / 1000} s (polling); last at ${new Date(now).toLocaleTimeString()}.`;
      mount(problems);
    } catch (err) {
      mount(problems, errorBox(new Error(`Could not read the device's values: ${err.message}`)));
    }
  }
  await poll();
  for (const chart of charts) chart.refresh();
  let ticks = 0;
  const timer = setInterval(async () => {
    if (stopped) return;
    await poll();
    ticks += 1;
    for (const chart of charts) if (ticks % 15 === 0) chart.tick();
  }, POLL_MS);
  // The live chart range follows new values: refetch it at the poll rate.
  const liveTimer = setInterval(() => { for (const chart of charts) chart.live?.(); }, POLL_MS);
  for (const chart of charts) chart.live = () => chart.el.querySelector('[data-range="live"][aria-pressed="true"]') && chart.refresh();

  try {
    const reply = await optional(`/api/v1/devices/${id}/events?limit=50`);
    if (reply.missing) timeline.append(notice('The device event timeline is not available on this server yet.'));
    else {
      const list = Array.isArray(reply.data) ? reply.data : (reply.data.events || []);
      timeline.append(list.length ? h('ol.timeline', {}, list.map((e) => h('li', {},
        h('strong', {}, e.name || e.code || 'event'), e.severity ? ` (${e.severity})` : '', ' · ', when(e.created_at || e.ts),
        e.resolved_at ? ` · resolved ${when(e.resolved_at)}` : '',
        e.description || e.message ? h('div', {}, e.description || e.message) : null))) : empty('No events for this device yet.'));
    }
  } catch (err) {
    timeline.append(errorBox(err));
  }

  return () => { stopped = true; clearInterval(timer); clearInterval(liveTimer); };
}
