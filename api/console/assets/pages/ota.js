// OTA firmware shipments: shown once the server has the OTA API.
import { optional } from '../api.js';
import { h, mount, notice, empty, table, when } from '../dom.js';

export async function render(main) {
  const reply = await optional('/api/v1/ota/shipments');
  if (reply.missing) {
    mount(main, h('h1', {}, 'OTA shipments'),
      notice('Over-the-air firmware updates are not available on this server yet (no /api/v1/ota endpoint).'));
    return;
  }
  const list = Array.isArray(reply.data) ? reply.data : (reply.data.shipments || []);
  mount(main, h('h1', {}, 'OTA shipments'),
    list.length ? table('OTA shipments', ['Shipment', 'Firmware', 'Status', 'Progress', 'Started'], list.map((s) => h('tr', {},
      h('td', {}, String(s.name || s.id)), h('td', {}, String(s.firmware || s.firmware_id || '–')), h('td', {}, String(s.status || '–')),
      h('td', {}, s.total ? h('progress', { max: s.total, value: s.done || 0, 'aria-label': `Shipment ${s.id} progress` }) : '–'),
      h('td', {}, when(s.created_at)))))
      : empty('No shipments yet.'));
}
