// Templates: list, create and change (datastreams, events, metadata fields, dashboard widget
// layout). A change applies to every device of the template at once.
import { get, post, json, ApiError, session } from '../api.js';
import { h, mount, field, empty, errorBox, notice, table, when, announce } from '../dom.js';
import { defaultLayout } from '../widgets.js';

const TYPES = ['integer', 'double', 'string', 'enum', 'location'];
const WIDGETS = ['value', 'gauge', 'led', 'switch', 'slider', 'terminal', 'map', 'chart'];
const META_TYPES = ['text', 'number', 'email', 'phone', 'location', 'timezone', 'imei', 'iccid'];

export async function render(main, { params, go }) {
  const id = params[0];
  if (!id) return list(main);
  let template = null;
  if (id !== 'new') {
    try {
      template = await get(`/api/v1/templates/${encodeURIComponent(id)}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        mount(main, h('h1', {}, 'Template not found'), h('p', {}, h('a', { href: '/templates', 'data-link': '' }, 'Back to the templates')));
        return undefined;
      }
      throw err;
    }
  }
  return editor(main, template, go);
}

async function list(main) {
  const templates = await get('/api/v1/templates');
  const canEdit = session.user && session.user.role !== 'user';
  mount(main,
    h('h1', {}, 'Templates'),
    canEdit ? h('div.actions', {}, h('a.button', { href: '/templates/new', 'data-link': '' }, 'New template')) : null,
    templates.length
      ? table('Templates', ['Name', 'Template id', 'Datastreams', 'Updated'], templates.map((t) => h('tr', {},
        h('td', {}, h('a', { href: `/templates/${t.id}`, 'data-link': '' }, t.name)),
        h('td', {}, h('code', {}, t.id)),
        h('td.num', {}, String(t.datastreams.length)),
        h('td', {}, when(t.updated_at)))))
      : empty('No templates yet. A template declares the datastreams (virtual pins) its devices write.'));
}

function datastreamRow(ds = {}) {
  const cell = (control, label) => { control.setAttribute('aria-label', label); return h('td', {}, control); };
  const tr = h('tr');
  const type = h('select', { name: 'type' }, TYPES.map((t) => h('option', { value: t }, t)));
  type.value = ds.type || 'double';
  const num = (v) => (v === null || v === undefined ? '' : String(v));
  tr.append(
    cell(h('input', { type: 'number', name: 'pin', min: 0, max: 255, required: true, value: num(ds.pin) }), 'Pin (V0–V255)'),
    cell(h('input', { type: 'text', name: 'name', required: true, value: ds.name || '' }), 'Name'),
    cell(type, 'Type'),
    cell(h('input', { type: 'number', name: 'min', step: 'any', value: num(ds.min) }), 'Minimum'),
    cell(h('input', { type: 'number', name: 'max', step: 'any', value: num(ds.max) }), 'Maximum'),
    cell(h('input', { type: 'text', name: 'units', value: ds.units || '' }), 'Units'),
    cell(h('input', { type: 'number', name: 'decimals', min: 0, max: 10, value: num(ds.decimals) }), 'Decimals'),
    h('td', {}, h('button.secondary', { type: 'button', onclick: () => { tr.remove(); announce('Datastream removed'); } }, 'Remove')));
  // Settings this table does not show are kept as they were.
  tr.extra = { default_value: ds.default_value ?? null, sync_on_reconnect: Boolean(ds.sync_on_reconnect) };
  return tr;
}

function readDatastreams(tbody) {
  return [...tbody.querySelectorAll('tr')].map((tr) => {
    const v = (name) => tr.querySelector(`[name="${name}"]`).value.trim();
    const n = (name) => (v(name) === '' ? null : Number(v(name)));
    return { ...tr.extra, pin: n('pin'), name: v('name'), type: v('type'), min: n('min'), max: n('max'), units: v('units') || null, decimals: n('decimals') };
  });
}

function metaRow(field = {}) {
  const cell = (control, label) => { control.setAttribute('aria-label', label); return h('td', {}, control); };
  const type = h('select', { name: 'm-type' }, META_TYPES.map((t) => h('option', { value: t }, t)));
  type.value = field.type || 'text';
  const tr = h('tr', {},
    cell(h('input', { type: 'text', name: 'm-name', required: true, maxlength: '50', value: field.name || '' }), 'Metadata field name'),
    cell(type, 'Metadata field type'),
    cell(h('input', { type: 'text', name: 'm-default', maxlength: '255', value: field.default_value ?? '' }), 'Default value'));
  tr.append(h('td', {}, h('button.secondary', { type: 'button', onclick: () => { tr.remove(); announce('Metadata field removed'); } }, 'Remove')));
  return tr;
}

function readMetadata(tbody) {
  return [...tbody.querySelectorAll('tr')].map((tr) => {
    const v = (name) => tr.querySelector(`[name="${name}"]`).value.trim();
    return { name: v('m-name'), type: v('m-type'), default_value: v('m-default') || null };
  });
}

function layoutEditor(initial, datastreams) {
  const rows = h('tbody');
  const add = (spec = { type: 'value', pin: datastreams[0]?.pin ?? 0, title: '' }) => {
    const type = h('select', { name: 'w-type', 'aria-label': 'Widget type' }, WIDGETS.map((x) => h('option', { value: x }, x)));
    type.value = spec.type;
    const tr = h('tr', {},
      h('td', {}, type),
      h('td', {}, h('input', { type: 'number', name: 'w-pin', min: 0, max: 255, value: spec.pin, 'aria-label': 'Widget pin' })),
      h('td', {}, h('input', { type: 'text', name: 'w-title', value: spec.title || '', 'aria-label': 'Widget title' })),
      h('td', {},
        h('button.secondary', { type: 'button', 'aria-label': 'Move up', onclick: () => tr.previousElementSibling && tr.parentNode.insertBefore(tr, tr.previousElementSibling) }, '↑'), ' ',
        h('button.secondary', { type: 'button', 'aria-label': 'Move down', onclick: () => tr.nextElementSibling && tr.parentNode.insertBefore(tr.nextElementSibling, tr) }, '↓'), ' ',
        h('button.secondary', { type: 'button', onclick: () => tr.remove() }, 'Remove')));
    rows.append(tr);
  };
  (initial && initial.length ? initial : defaultLayout(datastreams)).forEach(add);
  const el = h('div', {},
    table('Widget layout', ['Widget', 'Pin', 'Title', 'Order'], []),
    h('div.actions', {}, h('button.secondary', { type: 'button', onclick: () => add() }, 'Add widget')));
  el.querySelector('table').replaceChild(rows, el.querySelector('tbody'));
  return {
    el,
    read: () => [...rows.querySelectorAll('tr')].map((tr) => ({
      type: tr.querySelector('[name="w-type"]').value,
      pin: Number(tr.querySelector('[name="w-pin"]').value),
      title: tr.querySelector('[name="w-title"]').value.trim() || undefined,
    })),
  };
}

async function editor(main, template, go) {
  const isNew = !template;
  const canEdit = session.user && session.user.role !== 'user';
  const fixed = !canEdit;

  const name = h('input', { type: 'text', name: 'template-name', required: true, value: template?.name || '' });
  const description = h('textarea', { name: 'description', rows: 2 }, template?.description || '');
  const dsBody = h('tbody');
  for (const ds of template?.datastreams || []) dsBody.append(datastreamRow(ds));
  if (isNew) dsBody.append(datastreamRow({ pin: 0, name: '', type: 'double' }));
  const dsTable = table('Datastreams', ['Pin', 'Name', 'Type', 'Min', 'Max', 'Units', 'Decimals', ''], []);
  dsTable.querySelector('table').replaceChild(dsBody, dsTable.querySelector('tbody'));
  const nextPin = () => Math.min(255, Math.max(-1, ...readDatastreams(dsBody).map((d) => d.pin ?? -1)) + 1);

  const metaBody = h('tbody');
  for (const m of template?.metadata || []) metaBody.append(metaRow(m));
  const metaTable = table('Metadata fields', ['Name', 'Type', 'Default value', ''], []);
  metaTable.querySelector('table').replaceChild(metaBody, metaTable.querySelector('tbody'));

  const events = h('textarea', { name: 'events', rows: 4 }, JSON.stringify(template?.events || [], null, 2));
  const layout = layoutEditor(template?.dashboard?.widgets || [], template?.datastreams || []);

  const message = h('div', { 'aria-live': 'polite' });
  const save = h('button', { type: 'submit', disabled: !canEdit }, isNew ? 'Create template' : 'Save template');
  const form = h('form', {
    async onsubmit(e) {
      e.preventDefault();
      mount(message);
      const body = {
        name: name.value,
        description: description.value,
        datastreams: readDatastreams(dsBody),
        metadata: readMetadata(metaBody),
        dashboard: { widgets: layout.read() },
      };
      try {
        body.events = JSON.parse(events.value.trim() || '[]');
      } catch (err) {
        mount(message, errorBox(new Error(`Events must be valid JSON: ${err.message}`)));
        return;
      }
      save.disabled = true;
      try {
        if (isNew) {
          const created = await post('/api/v1/templates', body);
          announce(`Template ${created.name} created`);
          go(`/templates/${created.id}`);
          return;
        }
        await json(`/api/v1/templates/${encodeURIComponent(template.id)}`, { method: 'PUT', body });
        announce('Template saved');
        mount(message, h('p', { role: 'status' }, 'Template saved. Its devices use the new datastreams, events and metadata fields at once; dashboards show the layout from their next load.'));
      } catch (err) {
        mount(message, errorBox(err));
      } finally {
        save.disabled = !canEdit;
      }
    },
  },
  h('fieldset', { disabled: fixed }, h('legend', {}, 'Template'),
    field('Name', name),
    field('Description', description)),
  h('fieldset', { disabled: fixed }, h('legend', {}, 'Datastreams (virtual pins)'), dsTable,
    h('div.actions', {}, h('button.secondary', { type: 'button', onclick: () => { const tr = datastreamRow({ pin: nextPin(), type: 'double' }); dsBody.append(tr); tr.querySelector('[name="name"]').focus(); } }, 'Add datastream'))),
  h('fieldset', { disabled: fixed }, h('legend', {}, 'Events'),
    field('Events (JSON list)', events, 'Events devices may log (Blynk.logEvent), for example [{"code": "overheat", "name": "Overheating", "severity": "warning", "description": "Above 40 °C", "notifications": {"email": true, "webhook": true}}]. Severity: info, warning, critical or content.')),
  h('fieldset', { disabled: fixed }, h('legend', {}, 'Metadata fields'),
    h('p.muted.small', {}, 'A value per device (set on the device page, by the device with Blynk.setMetadata, or through the device HTTP API). Every device also has Device Name, Device Owner, Hotspot Name and Time Zone.'),
    metaTable,
    h('div.actions', {}, h('button.secondary', { type: 'button', onclick: () => { const tr = metaRow(); metaBody.append(tr); tr.querySelector('[name="m-name"]').focus(); } }, 'Add metadata field'))),
  h('fieldset', { disabled: fixed }, h('legend', {}, 'Dashboard widget layout'),
    h('p.muted.small', {}, 'Leave it empty to show default widgets for the datastreams.'),
    layout.el),
  canEdit ? null : notice('Only admin and staff users can change templates.'),
  message,
  h('div.actions', {}, save, h('a.button.secondary', { href: '/templates', 'data-link': '' }, isNew ? 'Cancel' : 'Back to the templates')));

  mount(main,
    h('h1', {}, isNew ? 'New template' : `Template ${template.name}`),
    template ? h('p.muted', {}, 'Template id ', h('code', {}, template.id), ` · created ${when(template.created_at)}`) : null,
    form);
}
