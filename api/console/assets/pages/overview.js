// Organization overview: device counts by status, templates, recent events of the devices.
import { get, onlineMap, session } from '../api.js';
import { h, mount, empty, errorBox, table, when } from '../dom.js';

/** Timelines read for the recent events, events per timeline, events shown. */
const MAX_DEVICES = 20;
const PER_DEVICE = 5;
const SHOWN = 20;

export async function render(main) {
  const user = session.user;
  const [org, devices, templates] = await Promise.all([
    user ? get(`/api/v1/organizations/${user.org_id}`).catch(() => null) : null,
    get('/api/v1/devices'),
    get('/api/v1/templates'),
  ]);
  const online = await onlineMap(devices);
  const up = devices.filter((d) => online.get(d.id) === true).length;
  const unknown = devices.filter((d) => online.get(d.id) === null).length;
  const stat = (label, value, href) => h('div.card', {},
    h('div.muted', {}, label), h('div.stat', {}, String(value)),
    href ? h('a', { href, 'data-link': '' }, `View ${label.toLowerCase()}`) : null);

  const events = h('section', { 'aria-labelledby': 'events-title' }, h('h2#events-title', {}, 'Recent events'));
  mount(main,
    h('h1', {}, org ? `Overview of ${org.name}` : 'Overview'),
    h('div.grid', { role: 'list', 'aria-label': 'Fleet summary' },
      h('div', { role: 'listitem' }, stat('Devices', devices.length, '/devices')),
      h('div', { role: 'listitem' }, stat('Online', up, '/devices?status=online')),
      h('div', { role: 'listitem' }, stat('Offline', devices.length - up - unknown, '/devices?status=offline')),
      h('div', { role: 'listitem' }, stat('Templates', templates.length, '/templates'))),
    devices.length === 0
      ? empty('No devices yet.', h('a.button', { href: templates.length ? '/devices' : '/templates/new', 'data-link': '' },
        templates.length ? 'Add a device' : 'Create a template first'))
      : null,
    events);

  // The server has no organization-wide event feed: merge the newest events of the devices'
  // timelines (a few requests at a time).
  try {
    const sample = devices.slice(0, MAX_DEVICES);
    const lists = [];
    const queue = [...sample];
    const worker = async () => {
      while (queue.length) {
        const d = queue.shift();
        lists.push(await get(`/api/v1/devices/${d.id}/events?limit=${PER_DEVICE}`));
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    const list = lists.flat()
      .sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)) || b.id - a.id)
      .slice(0, SHOWN);
    if (!devices.length) {
      events.append(empty('Events appear here once devices exist.'));
    } else if (!list.length) {
      events.append(empty('No events yet. Devices going online or offline, OTA updates and events devices log appear here.'));
    } else {
      const byId = new Map(devices.map((d) => [d.id, d]));
      events.append(table('Recent events', ['When', 'Device', 'Event', 'Severity', 'Status', 'Description'], list.map((e) => h('tr', {},
        h('td', {}, when(e.created_at)),
        h('td', {}, byId.has(e.device_id) ? h('a', { href: `/devices/${e.device_id}`, 'data-link': '' }, byId.get(e.device_id).name) : String(e.device_id)),
        h('td', {}, e.name || e.code),
        h('td', {}, h('span', { class: `badge sev-${e.severity}` }, e.severity)),
        h('td', {}, e.resolved_at ? `resolved ${when(e.resolved_at)}` : e.source === 'system' && e.severity === 'info' ? '–' : 'open'),
        h('td', {}, e.description || '')))));
      if (devices.length > MAX_DEVICES) {
        events.append(h('p.muted.small', {}, `From the timelines of the first ${MAX_DEVICES} of ${devices.length} devices; each device's dashboard has its full timeline.`));
      }
    }
  } catch (err) {
    events.append(errorBox(new Error(`Could not read the device timelines: ${err.message}`)));
  }
}
