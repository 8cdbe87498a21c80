// OTA firmware updates: shipments with their progress (refreshed every 2 s while the page is
// shown), pause / resume / cancel, the status of every device of a shipment, the uploaded
// firmware, and forms to upload firmware and to start a shipment (admins and staff).
import { get, post, uploadFirmware, session } from '../api.js';
import { h, mount, remount, field, empty, errorBox, notice, table, when, announce } from '../dom.js';

const POLL_MS = 2000;
/** Which actions the server allows in which shipment status. */
const ACTIONS = { running: ['pause', 'cancel'], paused: ['resume', 'cancel'] };
const ACTION_LABEL = { pause: 'Pause', resume: 'Resume', cancel: 'Cancel' };
const HEADERS = ['Shipment', 'Firmware', 'Status', 'Progress', 'Rollout', 'Started', 'Actions'];

const words = (status) => String(status || '–').replace(/_/g, ' ');

function bytes(n) {
  if (!Number.isFinite(n)) return '–';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

function badge(status) {
  return h('span', { class: `badge st-${status}` }, words(status));
}

/** "4 of 10 finished: 3 updated, 1 failed. 6 pending." */
function progressText(p) {
  const done = p.success + p.failed + p.timed_out;
  const finished = [`${p.success} updated`];
  if (p.failed) finished.push(`${p.failed} failed`);
  if (p.timed_out) finished.push(`${p.timed_out} timed out`);
  const open = [];
  if (p.downloading) open.push(`${p.downloading} downloading`);
  if (p.sent) open.push(`${p.sent} offered`);
  if (p.pending) open.push(`${p.pending} pending`);
  return `${done} of ${p.total} finished: ${finished.join(', ')}.${open.length ? ` ${open.join(', ')}.` : ''}`;
}

function rolloutText(s) {
  const parts = [];
  if (s.cohorts.length <= 1) parts.push('All devices at once');
  else parts.push(`Cohort ${Math.min(s.current_cohort + 1, s.cohorts.length)} of ${s.cohorts.length} (${s.cohorts.map((c) => `${c} %`).join(' → ')})`);
  parts.push(`halts above ${Math.round(s.failure_threshold * 1000) / 10} % failed`);
  if (s.window) parts.push(`window ${s.window.start}–${s.window.end} device time`);
  return parts.join(' · ');
}

export async function render(main) {
  const canManage = !!session.user && session.user.role !== 'user';
  const [shipments, firmware, templates, devices] = await Promise.all([
    get('/api/v1/shipments'), get('/api/v1/firmware'), get('/api/v1/templates'), get('/api/v1/devices')]);
  const templateName = new Map(templates.map((t) => [t.id, t.name]));
  const deviceById = new Map(devices.map((d) => [d.id, d]));
  const firmwareLabel = (f) => `${f.version} (build ${f.build}) · ${templateName.get(f.template_id) || f.template_id} · ${f.file_name} · #${f.id}`;

  let stopped = false;
  const problems = h('div');
  const refreshed = h('p.muted', { 'aria-live': 'off' });

  // ---- Shipments: one table whose rows are updated in place, so focus and open device lists survive polling.
  const shipmentTable = table('OTA shipments', HEADERS, []);
  shipmentTable.classList.add('shipments');
  const shipmentBody = shipmentTable.querySelector('tbody');
  const shipmentArea = h('div');
  const rows = new Map(); // shipment id → row

  function shipmentRow(initial) {
    let current = initial;
    const id = initial.id;
    const nameCell = h('td');
    const firmwareCell = h('td');
    const status = h('span');
    const reason = h('div.muted.small');
    const bar = h('progress', { max: 1, value: 0 });
    const counts = h('div.muted.small');
    const rollout = h('td.small');
    const started = h('td');
    const message = h('div', { 'aria-live': 'polite' });
    const buttons = {};
    for (const action of Object.keys(ACTION_LABEL)) {
      buttons[action] = h(action === 'cancel' ? 'button.danger' : 'button.secondary', {
        type: 'button', hidden: true, 'data-key': `${id}-${action}`, onclick: () => act(action),
      }, ACTION_LABEL[action]);
    }
    const detailId = `shipment-${id}-devices`;
    const toggle = h('button.link', {
      type: 'button', 'aria-expanded': 'false', 'aria-controls': detailId, 'data-key': `${id}-devices`,
      onclick() { setOpen(detail.hidden); },
    }, 'Show devices');
    const deviceArea = h('div', { 'aria-live': 'off' });
    const detail = h('tr.detail', { id: detailId, hidden: true },
      h('td', { colspan: HEADERS.length }, h('h3.small-heading', {}, `Devices of shipment ${initial.name}`), deviceArea));
    const tr = h('tr', {}, nameCell, firmwareCell, h('td', {}, status, reason), h('td', {}, bar, counts), rollout, started,
      h('td', {}, h('div.actions.tight', {}, canManage ? [buttons.pause, buttons.resume, buttons.cancel] : null, toggle), message));
    let lastDevices = '';

    function update(s) {
      current = s;
      mount(nameCell, h('strong', {}, s.name), h('div.muted.small', {}, `Shipment #${s.id}`));
      mount(firmwareCell, `${s.firmware_version}`, h('div.muted.small', {}, `build ${s.firmware_build} · #${s.firmware_id}`));
      mount(status, badge(s.status));
      reason.textContent = s.status_reason || '';
      reason.hidden = !s.status_reason;
      const p = s.progress;
      const done = p.success + p.failed + p.timed_out;
      bar.max = Math.max(1, p.total);
      bar.value = done;
      bar.setAttribute('aria-label', `Shipment ${s.name}: ${done} of ${p.total} devices finished`);
      counts.textContent = progressText(p);
      rollout.textContent = rolloutText(s);
      started.textContent = when(s.created_at);
      const allowed = ACTIONS[s.status] || [];
      const focused = Object.values(buttons).find((b) => b === document.activeElement);
      for (const [action, button] of Object.entries(buttons)) {
        button.hidden = !allowed.includes(action);
        button.setAttribute('aria-label', `${ACTION_LABEL[action]} shipment ${s.name}`);
      }
      if (focused && focused.hidden) keepFocus();
    }

    /** Focus the first action still offered, or the device list toggle. */
    function keepFocus() {
      const next = Object.values(buttons).find((b) => !b.hidden && b.isConnected);
      (next || toggle).focus();
    }

    async function act(action) {
      if (action === 'cancel'
        && !window.confirm(`Cancel shipment “${current.name}”? Devices that have not updated yet will not be offered this firmware any more. A cancelled shipment cannot be resumed.`)) return;
      const from = buttons[action];
      mount(message);
      for (const button of Object.values(buttons)) button.disabled = true;
      try {
        const s = await post(`/api/v1/shipments/${id}/${action}`);
        update(s);
        announce(`Shipment ${s.name} is ${s.status}`);
      } catch (err) {
        mount(message, errorBox(err));
      } finally {
        for (const button of Object.values(buttons)) button.disabled = false;
        // Disabling or hiding the clicked button may have dropped focus: put it back nearby.
        if (document.activeElement === document.body || document.activeElement === from) {
          if (from.hidden) keepFocus(); else from.focus();
        }
      }
    }

    async function loadDevices() {
      try {
        const list = await get(`/api/v1/shipments/${id}/devices`);
        if (stopped) return;
        const signature = JSON.stringify(list);
        if (signature === lastDevices) return;
        lastDevices = signature;
        const region = list.length ? table(`Devices of shipment ${current.name}`, ['Device', 'Cohort', 'Status', 'Reason', 'Attempts', 'Downloads', 'Bytes sent', 'Last change'],
          list.map((d) => h('tr', {},
            h('td', {}, h('a', { href: `/devices/${d.device_id}`, 'data-link': '', 'data-key': `d${d.device_id}` },
              deviceById.get(d.device_id)?.name || `Device ${d.device_id}`)),
            h('td.num', {}, String(d.cohort + 1)),
            h('td', {}, badge(d.status)),
            h('td', {}, d.reason || '–'),
            h('td.num', {}, String(d.attempts)),
            h('td.num', {}, String(d.downloads)),
            h('td.num', {}, bytes(d.bytes_sent)),
            h('td', {}, when(d.finished_at || d.updated_at)))))
          : empty('This shipment has no devices.');
        if (list.length) region.dataset.key = 'region';
        remount(deviceArea, region);
      } catch (err) {
        if (!stopped) mount(deviceArea, errorBox(new Error(`Could not read the devices of this shipment: ${err.message}`)));
      }
    }

    function setOpen(open) {
      detail.hidden = !open;
      toggle.setAttribute('aria-expanded', String(open));
      toggle.textContent = open ? 'Hide devices' : 'Show devices';
      if (open) {
        if (!lastDevices) mount(deviceArea, h('p.muted', {}, 'Loading…'));
        loadDevices();
      }
    }

    update(initial);
    return { tr, detail, update, loadDevices, get open() { return !detail.hidden; }, get status() { return current.status; } };
  }

  /** Brings the table in line with the server's list (newest first). */
  function sync(list, { quiet = false } = {}) {
    const seen = new Set();
    for (const s of list) {
      seen.add(s.id);
      const row = rows.get(s.id);
      if (!row) {
        rows.set(s.id, shipmentRow(s));
      } else {
        if (!quiet && row.status !== s.status) {
          announce(`Shipment ${s.name} is now ${s.status}${s.status_reason ? `: ${s.status_reason}` : ''}`);
        }
        row.update(s);
      }
    }
    for (const [sid, row] of rows) {
      if (!seen.has(sid)) { row.tr.remove(); row.detail.remove(); rows.delete(sid); }
    }
    // Put rows in the server's order, moving only rows that are out of place (moving a row drops focus).
    let cursor = shipmentBody.firstElementChild;
    for (const s of list) {
      const row = rows.get(s.id);
      if (cursor !== row.tr) shipmentBody.insertBefore(row.tr, cursor);
      if (row.tr.nextElementSibling !== row.detail) shipmentBody.insertBefore(row.detail, row.tr.nextElementSibling);
      cursor = row.detail.nextElementSibling;
    }
    if (list.length) {
      if (!shipmentArea.contains(shipmentTable)) mount(shipmentArea, shipmentTable);
    } else {
      mount(shipmentArea, empty(canManage
        ? 'No shipments yet. Upload a firmware below, then start a shipment to offer it to devices.'
        : 'No shipments yet.'));
    }
  }
  let latest = shipments;
  sync(latest, { quiet: true });

  // ---- Firmware list.
  const firmwareArea = h('div');
  function drawFirmware() {
    mount(firmwareArea, firmware.length
      ? table('Firmware', ['Firmware', 'Template', 'Version', 'Build', 'Size', 'SHA-256', 'Uploaded', canManage ? 'Actions' : null].filter(Boolean),
        firmware.map((f) => h('tr', {},
          h('td', {}, h('strong', {}, f.file_name), h('div.muted.small', {}, `#${f.id}`)),
          h('td', {}, templateName.get(f.template_id) || f.template_id),
          h('td', {}, f.version),
          h('td', {}, f.build),
          h('td.num', {}, bytes(f.size)),
          h('td', {}, h('code', { title: f.sha256 }, `${f.sha256.slice(0, 12)}…`)),
          h('td', {}, when(f.created_at)),
          canManage ? h('td', {}, h('button.secondary', {
            type: 'button', 'aria-label': `Ship firmware ${f.version} build ${f.build}`,
            onclick() { chooseFirmware(f.id); shipForm.scrollIntoView({ block: 'start' }); firmwareSelect.focus(); },
          }, 'Ship')) : null)))
      : empty(canManage ? 'No firmware uploaded yet. Upload a binary built for one of your templates below.' : 'No firmware uploaded yet.'));
  }
  drawFirmware();

  // ---- Upload form.
  const uploadTemplate = h('select', { name: 'firmware-template', required: true },
    templates.map((t) => h('option', { value: t.id }, `${t.name} (${t.id})`)));
  const file = h('input', { type: 'file', name: 'firmware-file', required: true, accept: '.bin,.ota,application/octet-stream' });
  const uploadButton = h('button', { type: 'submit' }, 'Upload firmware');
  const uploadMessage = h('div', { 'aria-live': 'polite' });
  const uploadForm = h('form.card', {
    'aria-labelledby': 'upload-title',
    async onsubmit(e) {
      e.preventDefault();
      const chosen = file.files && file.files[0];
      if (!chosen) { mount(uploadMessage, errorBox(new Error('Choose the firmware file to upload.'))); return; }
      uploadButton.disabled = true;
      mount(uploadMessage, h('p', { role: 'status' }, `Uploading ${chosen.name} (${bytes(chosen.size)})…`));
      try {
        const record = await uploadFirmware(uploadTemplate.value, chosen);
        firmware.unshift(record);
        drawFirmware();
        fillFirmwareSelect();
        chooseFirmware(record.id);
        file.value = '';
        mount(uploadMessage, h('p', { role: 'status' }, `Uploaded ${record.file_name}: version ${record.version}, build ${record.build}, ${bytes(record.size)}. It is selected in “Start a shipment” below.`));
        announce(`Firmware ${record.version} uploaded`);
      } catch (err) {
        mount(uploadMessage, errorBox(err));
      } finally {
        uploadButton.disabled = false;
      }
    },
  },
  h('h2#upload-title', {}, 'Upload firmware'),
  templates.length
    ? [h('div.row', {}, field('Template', uploadTemplate), field('Firmware binary', file)),
      h('p.muted.small', {}, 'A binary built with the Blynk library for this template (BLYNK_TEMPLATE_ID and BLYNK_FIRMWARE_VERSION, or tagged with blynk_tag.py). The server reads its firmware tag and refuses a binary built for another template.'),
      uploadMessage, h('div.actions', {}, uploadButton)]
    : notice('Firmware is uploaded for a template: create a template first.'));

  // ---- Shipment form.
  const firmwareSelect = h('select', { name: 'shipment-firmware', required: true });
  const shipName = h('input', { type: 'text', name: 'shipment-name', maxlength: '200', placeholder: 'version and build' });
  const targetAll = h('input', { type: 'radio', name: 'shipment-target', value: 'template', checked: true });
  const targetSome = h('input', { type: 'radio', name: 'shipment-target', value: 'devices' });
  const targetTag = h('input', { type: 'radio', name: 'shipment-target', value: 'tag' });
  const tagInput = h('input', { type: 'text', name: 'shipment-tag', maxlength: '64', 'aria-label': 'Device tag', hidden: true });
  const allLabel = h('span');
  const deviceChoices = h('fieldset.check-list', { hidden: true }, h('legend', {}, 'Devices to update'));
  const filterVersion = h('input', { type: 'text', name: 'filter-version' });
  const filterBuild = h('input', { type: 'text', name: 'filter-build' });
  const cohorts = h('input', { type: 'text', name: 'cohorts', value: '100', inputmode: 'decimal' });
  const threshold = h('input', { type: 'number', name: 'failure-threshold', min: 0, max: 100, step: 'any', value: '10' });
  const timeout = h('input', { type: 'number', name: 'device-timeout', min: 1, max: 2592000, value: '900' });
  const grace = h('input', { type: 'number', name: 'health-grace', min: 0, max: 86400, value: '120' });
  const attempts = h('input', { type: 'number', name: 'attempts-limit', min: 1, max: 100, value: '3' });
  const windowStart = h('input', { type: 'time', name: 'window-start' });
  const windowEnd = h('input', { type: 'time', name: 'window-end' });
  const shipButton = h('button', { type: 'submit' }, 'Start shipment');
  const shipMessage = h('div', { 'aria-live': 'polite' });
  const noFirmware = notice('Upload a firmware first: a shipment offers one uploaded firmware to devices of its template.');

  function fillFirmwareSelect() {
    const keep = firmwareSelect.value;
    mount(firmwareSelect, firmware.map((f) => h('option', { value: f.id }, firmwareLabel(f))));
    if (firmware.some((f) => String(f.id) === keep)) firmwareSelect.value = keep;
    noFirmware.hidden = firmware.length > 0;
    shipFields.hidden = firmware.length === 0;
    drawDeviceChoices();
  }
  function chooseFirmware(fid) {
    firmwareSelect.value = String(fid);
    drawDeviceChoices();
  }
  function selectedFirmware() {
    return firmware.find((f) => String(f.id) === firmwareSelect.value);
  }
  function drawDeviceChoices() {
    const f = selectedFirmware();
    const eligible = f ? devices.filter((d) => d.template_id === f.template_id) : [];
    const tName = f ? (templateName.get(f.template_id) || f.template_id) : '';
    allLabel.textContent = f ? `Every device of template ${tName} (${eligible.length})` : 'Every device of the firmware’s template';
    mount(deviceChoices, h('legend', {}, 'Devices to update'),
      eligible.length
        ? eligible.map((d) => h('label.check', {}, h('input', { type: 'checkbox', name: 'shipment-device', value: d.id }), ` ${d.name} (#${d.id})`))
        : h('p.muted', {}, f ? `No device uses template ${tName} yet.` : 'Choose a firmware first.'));
    deviceChoices.hidden = !targetSome.checked;
  }
  for (const radio of [targetAll, targetSome, targetTag]) {
    radio.addEventListener('change', () => {
      deviceChoices.hidden = !targetSome.checked;
      tagInput.hidden = !targetTag.checked;
      if (targetTag.checked) tagInput.focus();
    });
  }
  firmwareSelect.addEventListener('change', drawDeviceChoices);

  function newShipment(f) {
    const body = { firmware_id: f.id };
    if (shipName.value.trim()) body.name = shipName.value.trim();
    if (targetSome.checked) {
      const ids = [...deviceChoices.querySelectorAll('input[type=checkbox]:checked')].map((c) => Number(c.value));
      if (!ids.length) throw new Error('Choose at least one device, or ship to every device of the template.');
      body.target = { devices: ids };
    } else if (targetTag.checked) {
      const tag = tagInput.value.trim();
      if (!tag) throw new Error('Give the tag of the devices to update.');
      body.target = { tag };
    } else {
      body.target = { template_id: f.template_id };
    }
    const filter = {};
    if (filterVersion.value.trim()) filter.version = filterVersion.value.trim();
    if (filterBuild.value.trim()) filter.build = filterBuild.value.trim();
    if (Object.keys(filter).length) body.filter = filter;
    const steps = cohorts.value.split(/[\s,;]+/).filter(Boolean).map(Number);
    if (steps.some((n) => !Number.isFinite(n))) throw new Error('Cohorts are percentages separated by commas, for example 1, 10, 100.');
    if (steps.length) body.cohorts = steps;
    if (threshold.value !== '') body.failure_threshold = Number(threshold.value) / 100;
    if (timeout.value !== '') body.device_timeout_secs = Number(timeout.value);
    if (grace.value !== '') body.health_grace_secs = Number(grace.value);
    if (attempts.value !== '') body.attempts_limit = Number(attempts.value);
    if (windowStart.value || windowEnd.value) {
      if (!windowStart.value || !windowEnd.value) throw new Error('Give both times of the daily window, or neither.');
      body.window = { start: windowStart.value.slice(0, 5), end: windowEnd.value.slice(0, 5) };
    }
    return body;
  }

  const shipFields = h('div', {},
    h('div.row', {}, field('Firmware', firmwareSelect), field('Shipment name (optional)', shipName)),
    h('fieldset', {}, h('legend', {}, 'Target'),
      h('label.check', {}, targetAll, ' ', allLabel),
      h('label.check', {}, targetSome, ' Only the devices I choose'),
      deviceChoices,
      h('label.check', {}, targetTag, ' Devices of the template with the tag'),
      tagInput),
    h('div.row', {},
      field('Only devices reporting version', filterVersion, 'Optional. Devices already on the shipped build are always left out.'),
      field('Only devices reporting build', filterBuild, 'Optional.')),
    h('details', {},
      h('summary', {}, 'Rollout options'),
      h('div.row', {},
        field('Cohorts (cumulative %)', cohorts, 'For example 1, 10, 100: a canary first, the rest when it succeeds. Ends at 100.'),
        field('Halt above failed share (%)', threshold),
        field('Device timeout (s)', timeout, 'Time a device has to come back with the new firmware.'),
        field('Health grace (s)', grace, 'Time an updated device has to send data; 0 disables the check.'),
        field('Attempts per device', attempts)),
      h('div.row', {},
        field('Daily window from (device time)', windowStart, 'Optional: offers go out only inside the window, in each device’s local time (its Time Zone metadata; UTC when it has none).'),
        field('Daily window to (device time)', windowEnd))),
    shipMessage,
    h('div.actions', {}, shipButton));

  const shipForm = h('form.card', {
    'aria-labelledby': 'ship-title',
    async onsubmit(e) {
      e.preventDefault();
      mount(shipMessage);
      const f = selectedFirmware();
      if (!f) { mount(shipMessage, errorBox(new Error('Choose a firmware.'))); return; }
      let body;
      try { body = newShipment(f); } catch (err) { mount(shipMessage, errorBox(err)); return; }
      shipButton.disabled = true;
      try {
        const s = await post('/api/v1/shipments', body);
        latest = [s, ...latest.filter((x) => x.id !== s.id)];
        sync(latest, { quiet: true });
        mount(shipMessage, h('p', { role: 'status' }, `Shipment “${s.name}” started for ${s.progress.total} device${s.progress.total === 1 ? '' : 's'}. Its progress is shown above.`));
        announce(`Shipment ${s.name} started`);
      } catch (err) {
        mount(shipMessage, errorBox(err));
      } finally {
        shipButton.disabled = false;
      }
    },
  },
  h('h2#ship-title', {}, 'Start a shipment'),
  noFirmware,
  shipFields);
  fillFirmwareSelect();

  mount(main,
    h('h1', {}, 'OTA shipments'),
    problems,
    h('section', { 'aria-labelledby': 'shipments-title' }, h('h2#shipments-title', {}, 'Shipments'), shipmentArea, refreshed),
    canManage ? null : notice('Only admin and staff users can upload firmware and start, pause, resume or cancel shipments.'),
    h('section', { 'aria-labelledby': 'firmware-title' }, h('h2#firmware-title', {}, 'Firmware'), firmwareArea),
    canManage ? [uploadForm, shipForm] : null);

  // ---- Polling while the page is shown.
  let busy = false;
  async function poll() {
    if (stopped || busy || document.hidden) return;
    busy = true;
    try {
      const list = await get('/api/v1/shipments');
      if (stopped) return;
      latest = list;
      sync(list);
      await Promise.all([...rows.values()].filter((r) => r.open).map((r) => r.loadDevices()));
      mount(problems);
      refreshed.textContent = `Progress refreshed every ${POLL_MS / 1000} s; last at ${new Date().toLocaleTimeString()}.`;
    } catch (err) {
      if (!stopped) mount(problems, errorBox(new Error(`Could not refresh the shipments: ${err.message}`)));
    } finally {
      busy = false;
    }
  }
  refreshed.textContent = `Progress refreshed every ${POLL_MS / 1000} s.`;
  const timer = setInterval(poll, POLL_MS);
  const onVisibility = () => { if (!document.hidden) poll(); };
  document.addEventListener('visibilitychange', onVisibility);
  return () => {
    stopped = true;
    clearInterval(timer);
    document.removeEventListener('visibilitychange', onVisibility);
  };
}
