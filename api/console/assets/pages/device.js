// Device dashboard: online state, last seen and reported firmware, widgets from the template
// (saved layout, or defaults from its datastreams), values pushed live over the /api/v1/live
// WebSocket (polled every 2 s while it is not open), state refreshed every 2 s, charts over the
// history, the event timeline (with resolve), widget properties set by the device, and
// control widgets that write.
import { get, post, json, optional, blynk, sql, session, ApiError } from '../api.js';
import { h, mount, remount, notice, errorBox, empty, table, when, announce, field } from '../dom.js';
import { chartWidget } from '../chart.js';
import * as w from '../widgets.js';

const POLL_MS = 2000;
/** Wait before opening the live socket again after it closed. */
const LIVE_RETRY_MS = 5000;
/** The timeline and the properties are refreshed every this many polls (10 s). */
const SLOW_EVERY = 5;
const TIMELINE_LIMIT = 50;

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
    // A server without the history API: the same downsampling with SQL (bucket = range / width).
    const stepUs = Math.max(1000, Math.floor(((to - from) * 1000) / points));
    const rows = await sql(`SELECT date_bin(INTERVAL '${stepUs} microseconds', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS t, avg(value) AS v
FROM telemetry WHERE device_id = ${id} AND pin = ${Number(pin)} AND value IS NOT NULL
AND ts >= ${sqlTime(from)} AND ts < ${sqlTime(to)} GROUP BY 1 ORDER BY 1`);
    return { points: rows.map((r) => [toMs(r.t), r.v === null ? null : Number(r.v)]), note: 'this server has no history API: downsampled with SQL' };
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
        chart.pin = Number(spec.pin);
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
  const seen = h('span', {}, '');
  const reported = h('div');
  let reportedSignature = null;
  const tokenText = h('code.token', { hidden: true }, device.token);
  const reveal = h('button.link', {
    type: 'button', 'aria-expanded': 'false',
    onclick() { tokenText.hidden = !tokenText.hidden; reveal.setAttribute('aria-expanded', String(!tokenText.hidden)); reveal.textContent = tokenText.hidden ? 'Show auth token' : 'Hide auth token'; },
  }, 'Show auth token');
  const updated = h('p.muted', { 'aria-live': 'off' });
  const problems = h('div');
  const openOnly = h('input', { type: 'checkbox', id: 'open-events', name: 'open-events' });
  const timelineMessage = h('div', { 'aria-live': 'polite' });
  const timelineList = h('div', {}, h('p.muted', {}, 'Loading…'));
  const timeline = h('section.card', { 'aria-labelledby': 'timeline-title' }, h('h2#timeline-title', {}, 'Event timeline'),
    h('div.check', {}, openOnly, h('label.inline', { for: 'open-events' }, 'Only open events')),
    timelineMessage, timelineList);
  const metaList = h('div', {}, h('p.muted', {}, 'Loading…'));
  const metaMessage = h('div', { 'aria-live': 'polite' });
  const metadataCard = h('section.card', { 'aria-labelledby': 'metadata-title' }, h('h2#metadata-title', {}, 'Metadata'), metaList, metaMessage);
  const propertyList = h('div', {}, h('p.muted', {}, 'Loading…'));
  const properties = h('section.card', { 'aria-labelledby': 'properties-title' }, h('h2#properties-title', {}, 'Widget properties set by the device'), propertyList);

  mount(main,
    h('h1', {}, device.name),
    h('div.card', {},
      h('p', {}, 'Status: ', status, ' ', seen),
      reported,
      h('p', {}, 'Template: ', h('a', { href: `/templates/${template.id}`, 'data-link': '' }, template.name),
        ` · Device id ${device.id} · Created ${when(device.created_at)}`),
      h('p', {}, reveal, ' ', tokenText)),
    Array.isArray(saved) && saved.length ? null : notice('This template has no saved dashboard layout: showing default widgets for its datastreams.'),
    problems,
    widgets.length ? h('div.grid', { id: 'dashboard', 'aria-label': 'Dashboard' }, widgets.map((x) => x.widget.el))
      : empty('The template has no datastreams, so there is nothing to show.', h('a', { href: `/templates/${template.id}`, 'data-link': '' }, 'Edit the template')),
    updated,
    timeline,
    metadataCard,
    properties);

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
  /** Online state, last seen and what the device reported about itself (GET …/status). */
  function showStatus(st) {
    status.textContent = st.online ? 'online' : 'offline';
    status.className = `badge ${st.online ? 'online' : 'offline'}`;
    if (st.online) seen.textContent = `since ${when(st.connected_at)} · last seen ${when(st.last_seen_at)}`;
    else if (st.last_seen_at) seen.textContent = `· last seen ${when(st.last_seen_at)}`;
    else seen.textContent = '· has not connected yet';
    const info = st.info;
    const signature = JSON.stringify(info);
    if (signature === reportedSignature) return;
    reportedSignature = signature;
    if (!info) {
      mount(reported, h('p.muted', {}, 'The device has not reported its firmware yet (it does when it connects with the Blynk library).'));
      return;
    }
    const facts = [
      ['Firmware', info.firmware ? `${info.firmware}${info.build ? ` (build ${info.build})` : ''}` : info.build ? `build ${info.build}` : null],
      ['Board', [info.board, info.cpu].filter(Boolean).join(' · ') || null],
      ['Connection', info.connection],
      ['Blynk library', info.library_version],
      ['Heartbeat', info.heartbeat_secs ? `${info.heartbeat_secs} s` : null],
      ['Reported at', when(info.reported_at)],
    ].filter(([, value]) => value !== null && value !== undefined && value !== '');
    mount(reported, h('dl.facts', { 'aria-label': 'Reported by the device' }, facts.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))));
  }

  let stopped = false;
  // Live values: the /api/v1/live WebSocket of this device. Browsers cannot set headers on a
  // WebSocket, so the session token travels as a `bearer.<token>` subprotocol (never in the URL).
  // While it is open, values come as they arrive and polling only reads the status; when it
  // cannot open or closes, values are polled and the socket is opened again a bit later.
  let liveOpen = false;
  let socket = null;
  function liveValue(msg) {
    if (typeof msg.value === 'number') return msg.value;
    const text = msg.text ?? '';
    return text.includes('\0') ? text.split('\0') : text;
  }
  function onLive(event) {
    let msg;
    try { msg = JSON.parse(event.data); } catch { return; }
    if (msg.lagged) { poll(true); return; }
    const m = /^V(\d+)$/.exec(msg.pin || '');
    if (!m || msg.device_id !== id) return;
    const pin = Number(m[1]);
    const ms = Math.floor(msg.ts / 1000); // µs → ms, as the values API rounds
    const value = liveValue(msg);
    stamps[pin] = ms;
    for (const x of widgets) if (x.pin === pin) x.widget.update(value, ms);
    for (const chart of charts) if (chart.pin === pin) chart.push(ms, Number(value));
    updated.textContent = `Values arrive live; status refreshed every ${POLL_MS / 1000} s; last value at ${new Date(ms).toLocaleTimeString()}.`;
  }
  function connectLive() {
    if (stopped || !session.token || typeof WebSocket === 'undefined') return;
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/live?device=${id}`;
    try {
      socket = new WebSocket(url, ['pinhouse.live', `bearer.${session.token}`]);
    } catch {
      return;
    }
    socket.addEventListener('open', () => {
      liveOpen = true;
      main.dataset.live = 'open';
      // Values written between the last poll and the socket opening.
      poll(true);
    });
    socket.addEventListener('message', onLive);
    socket.addEventListener('close', () => {
      const wasOpen = liveOpen;
      liveOpen = false;
      socket = null;
      if (stopped) return;
      delete main.dataset.live;
      setTimeout(connectLive, wasOpen ? 0 : LIVE_RETRY_MS);
    });
  }

  async function poll(withValues = !liveOpen) {
    try {
      const [state, values] = await Promise.all([
        get(`/api/v1/devices/${id}/status`),
        withValues ? readValues() : null,
      ]);
      if (stopped) return;
      showStatus(state);
      const now = Date.now();
      if (values) for (const { pin, widget } of widgets) widget.update(values[pin] ?? null, stamps[pin] ?? null);
      if (!liveOpen) updated.textContent = `Values and status refreshed every ${POLL_MS / 1000} s; last at ${new Date(now).toLocaleTimeString()}.`;
      mount(problems);
    } catch (err) {
      if (!stopped) mount(problems, errorBox(new Error(`Could not read the device's state and values: ${err.message}`)));
    }
  }

  const me = session.user;
  const resolver = (e) => {
    if (!e.resolved_by_user_id) return 'by the device';
    return me && me.id === e.resolved_by_user_id ? 'by you' : `by user ${e.resolved_by_user_id}`;
  };
  async function resolve(event) {
    mount(timelineMessage);
    try {
      await post(`/api/v1/devices/${id}/events/${event.id}/resolve`);
      announce(`Event ${event.name} resolved`);
      await loadTimeline();
      const li = timelineList.querySelector(`[data-key="ev-${event.id}"]`);
      if (li) li.focus(); else openOnly.focus();
    } catch (err) {
      mount(timelineMessage, errorBox(err));
    }
  }
  let timelineSignature = null;
  async function loadTimeline() {
    try {
      const list = await get(`/api/v1/devices/${id}/events?limit=${TIMELINE_LIMIT}${openOnly.checked ? '&open=true' : ''}`);
      if (stopped) return;
      const signature = `${openOnly.checked}${JSON.stringify(list)}`;
      if (signature === timelineSignature) return;
      timelineSignature = signature;
      if (!list.length) {
        remount(timelineList, empty(openOnly.checked ? 'No open events.' : 'No events for this device yet. Going online or offline, OTA updates and events the device logs (Blynk.logEvent) appear here.'));
        return;
      }
      remount(timelineList,
        h('ol.timeline', {}, list.map((e) => {
          // Info events of the server (online, offline, OTA steps) are a log, not something to resolve.
          const resolvable = !e.resolved_at && !(e.source === 'system' && e.severity === 'info');
          return h('li', { class: `sev-${e.severity}${e.resolved_at ? ' resolved' : ''}`, tabindex: '-1', 'data-key': `ev-${e.id}` },
            h('div', {}, h('strong', {}, e.name || e.code), ' ', h('span', { class: `badge sev-${e.severity}` }, e.severity), ' · ',
              h('time', { datetime: e.created_at }, when(e.created_at)), ' · ', e.source === 'system' ? 'server' : 'device',
              e.code && e.code !== e.name ? [' · ', h('code', {}, e.code)] : null),
            e.description ? h('div', {}, e.description) : null,
            e.resolved_at ? h('div.muted.small', {}, `Resolved ${when(e.resolved_at)} ${resolver(e)}`) : null,
            resolvable ? h('div.actions.tight', {}, h('button.secondary', {
              type: 'button', 'data-key': `resolve-${e.id}`, 'aria-label': `Resolve ${e.name || e.code} of ${when(e.created_at)}`,
              onclick: () => resolve(e),
            }, 'Resolve')) : null);
        })),
        list.length === TIMELINE_LIMIT ? h('p.muted.small', {}, `The newest ${TIMELINE_LIMIT} events.`) : null);
    } catch (err) {
      if (!stopped) remount(timelineList, errorBox(new Error(`Could not read the event timeline: ${err.message}`)));
    }
  }
  openOnly.addEventListener('change', loadTimeline);

  let propertySignature = null;
  async function loadProperties() {
    try {
      const list = await get(`/api/v1/devices/${id}/properties`);
      if (stopped) return;
      const signature = JSON.stringify(list);
      if (signature === propertySignature) return;
      propertySignature = signature;
      remount(propertyList, list.length
        ? table('Widget properties set by the device', ['Pin', 'Property', 'Value', 'Updated'], list.map((p) => h('tr', {},
          h('td', {}, `V${p.pin}`), h('td', {}, h('code', {}, p.property)), h('td', {}, p.values.join(', ')), h('td', {}, when(p.updated_at)))))
        : empty('The device has set no widget properties (Blynk.setProperty: label, color, …).'));
    } catch (err) {
      if (!stopped) remount(propertyList, errorBox(new Error(`Could not read the widget properties: ${err.message}`)));
    }
  }

  // Metadata: every field with its value; writable ones are edited in place and saved together.
  const canManage = session.user && (session.user.role !== 'user' || session.user.id === device.owner_user_id);
  async function loadMetadata() {
    try {
      const list = await get(`/api/v1/devices/${id}/metadata`);
      if (stopped) return;
      const inputs = [];
      const rows = list.map((m) => {
        const label = `${m.name}${m.system ? ' (system)' : ''}`;
        let cell;
        if (m.writable && canManage) {
          const input = h('input', { type: 'text', name: `meta-${m.name}`, value: m.value ?? '', 'data-meta': m.name, maxlength: '255' });
          inputs.push([m, input]);
          cell = field(label, input, m.type === 'text' ? null : `Type: ${m.type}`);
        } else {
          cell = h('p', {}, h('strong', {}, `${label}: `), h('output', { 'data-meta': m.name }, m.value ?? '–'));
        }
        return h('div', {}, cell);
      });
      const saveMeta = h('button', { type: 'submit' }, 'Save metadata');
      mount(metaList, list.length
        ? h('form', {
          async onsubmit(e) {
            e.preventDefault();
            mount(metaMessage);
            const changed = Object.fromEntries(inputs
              .filter(([m, input]) => input.value.trim() !== (m.value ?? ''))
              .map(([m, input]) => [m.name, input.value.trim()]));
            if (!Object.keys(changed).length) { mount(metaMessage, h('p', { role: 'status' }, 'Nothing changed.')); return; }
            saveMeta.disabled = true;
            try {
              await json(`/api/v1/devices/${id}/metadata`, { method: 'PUT', body: changed });
              announce('Metadata saved');
              await loadMetadata();
              mount(metaMessage, h('p', { role: 'status' }, 'Metadata saved.'));
            } catch (err) {
              mount(metaMessage, errorBox(err));
            } finally {
              saveMeta.disabled = false;
            }
          },
        }, rows, inputs.length ? h('div.actions', {}, saveMeta) : null)
        : empty('No metadata.'));
    } catch (err) {
      if (!stopped) mount(metaList, errorBox(new Error(`Could not read the metadata: ${err.message}`)));
    }
  }

  await poll();
  loadMetadata();
  connectLive();
  for (const chart of charts) chart.refresh();
  loadTimeline();
  loadProperties();
  let ticks = 0;
  const timer = setInterval(async () => {
    if (stopped) return;
    await poll();
    ticks += 1;
    for (const chart of charts) if (ticks % 15 === 0) chart.tick();
    if (ticks % SLOW_EVERY === 0 && !stopped) { loadTimeline(); loadProperties(); }
  }, POLL_MS);
  // Without the live socket, the live chart range follows new values by refetching at the poll rate.
  const liveTimer = setInterval(() => { if (!liveOpen) for (const chart of charts) chart.live?.(); }, POLL_MS);
  for (const chart of charts) chart.live = () => chart.el.querySelector('[data-range="live"][aria-pressed="true"]') && chart.refresh();

  return () => { stopped = true; clearInterval(timer); clearInterval(liveTimer); delete main.dataset.live; socket?.close(); };
}
