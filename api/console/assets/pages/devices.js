// Device list with search and filters (template, tag — matched by the server —, status) and a
// form to add a device.
import { get, post, onlineMap, session } from '../api.js';
import { h, mount, field, empty, errorBox, table, when, notice, announce } from '../dom.js';

export async function render(main, { query, go }) {
  const [devices, templates] = await Promise.all([get('/api/v1/devices'), get('/api/v1/templates')]);
  const templateName = new Map(templates.map((t) => [t.id, t.name]));
  let online = new Map();
  let tagged = null; // ids of the devices with the tag in the filter (GET /api/v1/devices?tag=), or null
  let tagError = null;

  const search = h('input', { type: 'search', name: 'q', value: query.get('q') || '', placeholder: 'Name, id or token' });
  const templateFilter = h('select', { name: 'template' },
    h('option', { value: '' }, 'All templates'),
    templates.map((t) => h('option', { value: t.id }, t.name)));
  templateFilter.value = query.get('template') || '';
  const tagFilter = h('input', { type: 'text', name: 'tag', value: query.get('tag') || '' });
  const statusFilter = h('select', { name: 'status' },
    h('option', { value: '' }, 'Any status'), h('option', { value: 'online' }, 'Online'), h('option', { value: 'offline' }, 'Offline'));
  statusFilter.value = query.get('status') || '';
  const results = h('div', { id: 'device-results' });
  const count = h('p.muted', { 'aria-live': 'polite' });

  function apply() {
    const q = search.value.trim().toLowerCase();
    const list = devices.filter((d) => {
      if (q && !(`${d.name} ${d.id} ${d.token}`.toLowerCase().includes(q))) return false;
      if (templateFilter.value && d.template_id !== templateFilter.value) return false;
      if (tagged && !tagged.has(d.id)) return false;
      if (statusFilter.value === 'online' && online.get(d.id) !== true) return false;
      if (statusFilter.value === 'offline' && online.get(d.id) !== false) return false;
      return true;
    });
    const params = new URLSearchParams();
    if (search.value.trim()) params.set('q', search.value.trim());
    if (templateFilter.value) params.set('template', templateFilter.value);
    if (tagFilter.value.trim()) params.set('tag', tagFilter.value.trim());
    if (statusFilter.value) params.set('status', statusFilter.value);
    history.replaceState(null, '', `/devices${params.toString() ? `?${params}` : ''}`);
    count.textContent = `${list.length} of ${devices.length} devices`;
    if (tagError) {
      mount(results, errorBox(new Error(`Could not filter by tag: ${tagError.message}`)));
    } else if (!devices.length) {
      mount(results, empty('No devices yet. Add one with the form below; it gets an auth token for the Blynk library.'));
    } else if (!list.length) {
      mount(results, empty('No device matches these filters.'));
    } else {
      mount(results, table('Devices', ['Name', 'Status', 'Template', 'Created'], list.map((d) => {
        const state = online.get(d.id);
        return h('tr', {},
          h('td', {}, h('a', { href: `/devices/${d.id}`, 'data-link': '' }, d.name)),
          h('td', {}, h('span.badge', { class: `badge ${state ? 'online' : 'offline'}` },
            state === undefined ? 'checking…' : state === null ? 'unknown' : state ? 'online' : 'offline')),
          h('td', {}, templateName.get(d.template_id) || d.template_id),
          h('td', {}, when(d.created_at)));
      })));
    }
  }
  search.addEventListener('input', apply);
  let tagTimer = null;
  let tagAsked = 0;
  async function loadTagged() {
    const tag = tagFilter.value.trim();
    const asked = ++tagAsked;
    try {
      const ids = tag ? new Set((await get(`/api/v1/devices?tag=${encodeURIComponent(tag)}`)).map((d) => d.id)) : null;
      if (asked !== tagAsked) return;
      tagged = ids;
      tagError = null;
    } catch (err) {
      if (asked !== tagAsked) return;
      tagged = null;
      tagError = err;
    }
    apply();
  }
  tagFilter.addEventListener('input', () => { clearTimeout(tagTimer); tagTimer = setTimeout(loadTagged, 300); });
  for (const control of [templateFilter, statusFilter]) control.addEventListener('change', apply);

  // Add a device.
  const name = h('input', { type: 'text', name: 'device-name', required: true, maxlength: '200' });
  const template = h('select', { name: 'device-template', required: true },
    templates.map((t) => h('option', { value: t.id }, `${t.name} (${t.id})`)));
  const createMessage = h('div', { 'aria-live': 'polite' });
  const canCreate = templates.length > 0;
  const createForm = h('form.card', {
    'aria-labelledby': 'add-device-title',
    async onsubmit(event) {
      event.preventDefault();
      mount(createMessage);
      try {
        const device = await post('/api/v1/devices', { name: name.value, template_id: template.value });
        announce(`Device ${device.name} created`);
        go(`/devices/${device.id}`);
      } catch (err) {
        mount(createMessage, errorBox(err));
      }
    },
  },
  h('h2#add-device-title', {}, 'Add a device'),
  canCreate
    ? h('div.row', {}, field('Device name', name), field('Template', template), h('button', { type: 'submit' }, 'Create device'))
    : notice('A device needs a template: create a template first.'),
  createMessage);

  mount(main,
    h('h1', {}, 'Devices'),
    h('form.row.filters', { role: 'search', 'aria-label': 'Filter devices', onsubmit: (e) => { e.preventDefault(); apply(); } },
      field('Search', search),
      field('Template', templateFilter),
      field('Tag', tagFilter, 'The exact tag (device tags are set with PUT /api/v1/devices/{id}/tags).'),
      field('Status', statusFilter)),
    count,
    results,
    session.user ? createForm : null);
  if (tagFilter.value.trim()) await loadTagged(); else apply();
  online = await onlineMap(devices);
  apply();
  const timer = setInterval(async () => { online = await onlineMap(devices); apply(); }, 10000);
  return () => { clearInterval(timer); clearTimeout(tagTimer); };
}
