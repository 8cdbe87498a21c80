// Organization overview: device counts by status, templates, recent events.
import { get, optional, onlineMap, session } from '../api.js';
import { h, mount, empty, notice, errorBox, table, when } from '../dom.js';

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

  try {
    let list = null;
    const reply = await optional('/api/v1/events?limit=20');
    if (!reply.missing) {
      list = Array.isArray(reply.data) ? reply.data : (reply.data.events || []);
    } else if (devices.length) {
      // No organization-wide feed: merge the newest events of the first devices' timelines.
      const replies = await Promise.all(devices.slice(0, 20).map((d) => optional(`/api/v1/devices/${d.id}/events?limit=5`)));
      if (!replies.some((r) => r.missing)) {
        list = replies.flatMap((r) => (Array.isArray(r.data) ? r.data : []))
          .sort((a, b) => String(b.created_at).localeCompare(String(a.created_at))).slice(0, 20);
      }
    }
    if (list === null) {
      events.append(notice(devices.length
        ? 'Device events are not available on this server yet.'
        : 'Events appear here once devices exist.'));
    } else if (!list.length) {
      events.append(empty('No events yet.'));
    } else {
      const byId = new Map(devices.map((d) => [d.id, d]));
      events.append(table('Recent events', ['When', 'Device', 'Event', 'Severity', 'Description'], list.map((e) => h('tr', {},
        h('td', {}, when(e.created_at || e.ts)),
        h('td', {}, byId.has(e.device_id) ? h('a', { href: `/devices/${e.device_id}`, 'data-link': '' }, byId.get(e.device_id).name) : String(e.device_id ?? '–')),
        h('td', {}, e.name || e.code || '–'),
        h('td', {}, e.severity || '–'),
        h('td', {}, e.description || '')))));
    }
  } catch (err) {
    events.append(errorBox(err));
  }
}
