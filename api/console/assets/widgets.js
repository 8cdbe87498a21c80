// Dashboard widgets. Each factory returns {el, update(value, ms)}; control widgets call write(value).
import { h, svg, mount } from './dom.js';

export function formatValue(value, ds) {
  if (value === null || value === undefined) return '–';
  if (Array.isArray(value)) return value.join(', ');
  const n = Number(value);
  if (ds && (ds.type === 'double' || ds.type === 'integer') && Number.isFinite(n)) {
    return ds.decimals !== null && ds.decimals !== undefined ? n.toFixed(ds.decimals) : String(n);
  }
  return String(value);
}

function card(kind, title, ...body) {
  return h('section.card.widget', { 'aria-label': title, dataset: { widget: kind } }, h('h3', {}, title), ...body);
}

export function valueDisplay(title, ds) {
  const out = h('output.value', { 'aria-live': 'off' }, '–');
  const el = card('value', title, out);
  return {
    el,
    update(value) { mount(out, formatValue(value, ds), ds && ds.units ? h('small', {}, ds.units) : null); },
  };
}

export function gauge(title, ds) {
  const min = ds.min ?? 0;
  const max = ds.max ?? 100;
  const arc = (frac) => {
    const a = Math.PI * (1 - frac);
    return [60 + 50 * Math.cos(a), 60 - 50 * Math.sin(a)];
  };
  const track = svg('path', { d: 'M10,60 A50,50 0 0 1 110,60', fill: 'none', stroke: '#d0d7de', 'stroke-width': 10 });
  const bar = svg('path', { fill: 'none', stroke: '#0b5cad', 'stroke-width': 10 });
  const text = svg('text', { x: 60, y: 56, 'text-anchor': 'middle', class: 'gauge-value' }, '–');
  const picture = svg('svg', { viewBox: '0 0 120 80', role: 'img', 'aria-label': `${title}: no value` },
    track, bar, text,
    svg('text', { x: 10, y: 76, 'text-anchor': 'middle' }, String(min)),
    svg('text', { x: 110, y: 76, 'text-anchor': 'middle' }, String(max)));
  const meter = h('div.gauge', { role: 'meter', 'aria-valuemin': min, 'aria-valuemax': max, 'aria-label': title }, picture);
  return {
    el: card('gauge', title, meter),
    update(value) {
      if (value === null || value === undefined || value === '') return;
      const n = Number(value);
      if (!Number.isFinite(n)) return;
      const frac = Math.min(1, Math.max(0, (n - min) / ((max - min) || 1)));
      const [x, y] = arc(frac);
      bar.setAttribute('d', frac > 0 ? `M10,60 A50,50 0 0 1 ${x.toFixed(2)},${y.toFixed(2)}` : '');
      const shown = `${formatValue(n, ds)}${ds.units ? ` ${ds.units}` : ''}`;
      text.textContent = shown;
      meter.setAttribute('aria-valuenow', String(n));
      meter.setAttribute('aria-valuetext', shown);
      picture.setAttribute('aria-label', `${title}: ${shown}`);
    },
  };
}

export function led(title) {
  const light = h('span.led', { 'aria-hidden': 'true' });
  const label = h('span', {}, 'off');
  return {
    el: card('led', title, h('div', { role: 'status' }, light, label)),
    update(value) {
      const on = Number(value) > 0;
      light.classList.toggle('on', on);
      label.textContent = on ? 'on' : 'off';
    },
  };
}

export function toggle(title, write) {
  let on = false;
  const message = h('div', { 'aria-live': 'polite' });
  const button = h('button.switch', {
    type: 'button', role: 'switch', 'aria-checked': 'false',
    async onclick() {
      const next = !on;
      button.disabled = true;
      mount(message);
      try {
        await write(next ? 1 : 0);
        set(next);
      } catch (err) {
        mount(message, h('div.alert', { role: 'alert' }, `Not sent: ${err.message}`));
      } finally {
        button.disabled = false;
      }
    },
  }, 'Off');
  function set(value) {
    on = value;
    button.setAttribute('aria-checked', String(on));
    button.textContent = on ? 'On' : 'Off';
  }
  return {
    el: card('switch', title, h('div', {}, h('span.visually-hidden', {}, `${title} `), button), message),
    update(value) { if (!button.disabled) set(Number(value) > 0); },
  };
}

export function slider(title, ds, write) {
  const input = h('input', {
    type: 'range', min: ds.min ?? 0, max: ds.max ?? 100,
    step: ds.type === 'integer' ? 1 : 10 ** -(ds.decimals ?? 1),
    'aria-label': title,
  });
  const shown = h('output', {}, '–');
  const message = h('div', { 'aria-live': 'polite' });
  let dragging = false;
  input.addEventListener('input', () => { dragging = true; shown.textContent = formatValue(input.value, ds); });
  input.addEventListener('change', async () => {
    mount(message);
    try { await write(input.value); } catch (err) { mount(message, h('div.alert', { role: 'alert' }, `Not sent: ${err.message}`)); }
    dragging = false;
  });
  return {
    el: card('slider', title, h('div.row', {}, input, shown), message),
    update(value) {
      if (dragging || value === null) return;
      input.value = value;
      shown.textContent = formatValue(value, ds);
    },
  };
}

export function terminal(title, write) {
  const log = h('div.terminal', { role: 'log', 'aria-label': `${title} output`, tabindex: '0' });
  const input = h('input', { type: 'text', 'aria-label': `${title}: text to send`, autocomplete: 'off' });
  const message = h('div', { 'aria-live': 'polite' });
  let last;
  const form = h('form.row', {
    async onsubmit(e) {
      e.preventDefault();
      if (!input.value) return;
      mount(message);
      try { await write(input.value); input.value = ''; } catch (err) { mount(message, h('div.alert', { role: 'alert' }, `Not sent: ${err.message}`)); }
    },
  }, input, h('button', { type: 'submit' }, 'Send'));
  return {
    el: card('terminal', title, log, form, message),
    update(value, ms) {
      if (value === null || value === undefined) return;
      const text = Array.isArray(value) ? value.join(' ') : String(value);
      // With a timestamp (values API) each write is a line; without, each change of text.
      const key = ms ? `${ms}|${text}` : text;
      if (key === last) return;
      last = key;
      log.append(h('div', {}, `${new Date(ms || Date.now()).toLocaleTimeString()}  ${text}`));
      while (log.childNodes.length > 200) log.firstChild.remove();
      log.scrollTop = log.scrollHeight;
    },
  };
}

/** Location "lat,lon" / [lat, lon] / [lon, lat] as Blynk's map sends. Drawn without a tile server. */
export function map(title) {
  const coords = h('p.mono', {}, 'No position yet.');
  const picture = h('div.map');
  function draw(lat, lon) {
    const x = ((lon + 180) / 360) * 360;
    const y = ((90 - lat) / 180) * 180;
    const grid = [];
    for (let gx = 0; gx <= 360; gx += 30) grid.push(svg('line', { x1: gx, x2: gx, y1: 0, y2: 180, stroke: '#d0d7de' }));
    for (let gy = 0; gy <= 180; gy += 30) grid.push(svg('line', { x1: 0, x2: 360, y1: gy, y2: gy, stroke: gy === 90 ? '#8c959f' : '#d0d7de' }));
    mount(picture, svg('svg', { viewBox: '0 0 360 180', role: 'img', 'aria-label': `${title}: latitude ${lat}, longitude ${lon}` },
      svg('rect', { width: 360, height: 180, fill: '#eaf2fb' }), ...grid,
      svg('circle', { cx: x, cy: y, r: 6, fill: '#b3261e', stroke: '#fff', 'stroke-width': 2 }),
      svg('text', { x: 4, y: 176 }, 'equirectangular, no map tiles')));
  }
  return {
    el: card('map', title, picture, coords),
    update(value) {
      if (value === null || value === undefined) return;
      const parts = (Array.isArray(value) ? value : String(value).split(/[,\s]+/)).map(Number);
      if (parts.length < 2 || !parts.every(Number.isFinite)) { coords.textContent = `Not a position: ${value}`; return; }
      let [lat, lon] = parts;
      if (Math.abs(lat) > 90) [lat, lon] = [lon, lat];
      coords.textContent = `Latitude ${lat.toFixed(5)}, longitude ${lon.toFixed(5)}`;
      draw(lat, lon);
    },
  };
}

/** Default widgets for a template without a saved layout, from its datastreams. */
export function defaultLayout(datastreams) {
  const out = [];
  for (const ds of datastreams) {
    const numeric = ds.type === 'integer' || ds.type === 'double';
    const binary = ds.type === 'integer' && ds.min === 0 && ds.max === 1;
    if (binary) {
      out.push({ type: 'switch', pin: ds.pin }, { type: 'led', pin: ds.pin });
    } else if (numeric) {
      const ranged = ds.min !== null && ds.min !== undefined && ds.max !== null && ds.max !== undefined;
      out.push({ type: ranged ? 'gauge' : 'value', pin: ds.pin });
      if (ds.type === 'integer' && ranged) out.push({ type: 'slider', pin: ds.pin });
      out.push({ type: 'chart', pin: ds.pin });
    } else if (ds.type === 'location') {
      out.push({ type: 'map', pin: ds.pin });
    } else if (ds.type === 'string') {
      out.push({ type: 'terminal', pin: ds.pin });
    } else {
      out.push({ type: 'value', pin: ds.pin });
    }
  }
  return out;
}
