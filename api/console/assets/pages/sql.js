// SQL console: query editor, result table, a chart of the result, CSV / Parquet download.
import { sql, ApiError } from '../api.js';
import { h, mount, field, empty, errorBox, notice } from '../dom.js';
import { drawLine } from '../chart.js';

const EXAMPLE = 'SELECT device_id, pin, ts, value, text\nFROM telemetry\nORDER BY ts DESC\nLIMIT 100';
const MAX_ROWS_SHOWN = 1000;

function toMs(t) {
  if (typeof t !== 'string') return NaN;
  if (!/^\d{4}-\d\d-\d\d[T ]\d/.test(t)) return NaN;
  return Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(t) ? t : `${t.replace(' ', 'T')}Z`);
}

/** A line of the first numeric column over the first time column, if the result has both. */
function resultChart(rows, width) {
  if (!rows.length) return null;
  const cols = Object.keys(rows[0]);
  const timeCol = cols.find((c) => rows.every((r) => r[c] === null || Number.isFinite(toMs(r[c]))) && rows.some((r) => r[c] !== null));
  const valueCol = cols.find((c) => c !== timeCol && !/_id$|^pin$/.test(c) && rows.every((r) => r[c] === null || typeof r[c] === 'number') && rows.some((r) => typeof r[c] === 'number'));
  if (!timeCol || !valueCol) return null;
  const points = rows.map((r) => [toMs(r[timeCol]), r[valueCol]]).filter((p) => Number.isFinite(p[0])).sort((a, b) => a[0] - b[0]);
  if (!points.length) return null;
  const from = points[0][0];
  const to = Math.max(points[points.length - 1][0], from + 1);
  return h('figure.card.chart', {},
    h('figcaption', {}, `Chart of ${valueCol} over ${timeCol}`),
    drawLine(points, { width, from, to, title: `${valueCol} over ${timeCol}` }));
}

export async function render(main) {
  const editor = h('textarea', { name: 'sql', rows: 6, spellcheck: 'false' }, sessionStorage.getItem('pinhouse.sql') || EXAMPLE);
  const output = h('div', { id: 'sql-output' });
  const state = h('p.muted', { 'aria-live': 'polite' });
  const run = h('button', { type: 'submit' }, 'Run query');

  async function download(format) {
    try {
      const blob = await sql(editor.value, format);
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: `query.${format}` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      state.textContent = `Downloaded query.${format} (${blob.size} bytes).`;
    } catch (err) {
      const unsupported = err instanceof ApiError && err.status === 400 && /unknown format/.test(err.message);
      state.textContent = '';
      output.prepend(unsupported ? notice(`${format.toUpperCase()} output is not available on this server yet.`) : errorBox(err));
    }
  }

  const form = h('form', {
    async onsubmit(e) {
      e.preventDefault();
      sessionStorage.setItem('pinhouse.sql', editor.value);
      run.disabled = true;
      state.textContent = 'Running…';
      const started = performance.now();
      try {
        const rows = await sql(editor.value);
        const ms = Math.round(performance.now() - started);
        state.textContent = `${rows.length} row${rows.length === 1 ? '' : 's'} in ${ms} ms${rows.length > MAX_ROWS_SHOWN ? `; showing the first ${MAX_ROWS_SHOWN}` : ''}.`;
        if (!rows.length) { mount(output, empty('The query returned no rows.')); return; }
        const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
        const shown = rows.slice(0, MAX_ROWS_SHOWN);
        mount(output,
          h('div.table-wrap', { role: 'region', 'aria-label': 'Query result', tabindex: '0' },
            h('table', { id: 'sql-result' },
              h('caption.visually-hidden', {}, 'Query result'),
              h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))),
              h('tbody', {}, shown.map((r) => h('tr', {}, cols.map((c) => {
                const v = r[c];
                return h(typeof v === 'number' ? 'td.num' : 'td', {}, v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
              })))))),
          resultChart(shown, output.clientWidth || 600));
      } catch (err) {
        state.textContent = '';
        mount(output, errorBox(err));
      } finally {
        run.disabled = false;
      }
    },
  },
  field('SQL query over the telemetry table', editor, 'Columns: org_id, device_id, pin, ts, value, text. Ctrl+Enter runs the query.'),
  h('div.actions', {}, run,
    h('button.secondary', { type: 'button', onclick: () => download('csv') }, 'Download CSV'),
    h('button.secondary', { type: 'button', onclick: () => download('parquet') }, 'Download Parquet')));
  editor.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
  });
  mount(main, h('h1', {}, 'SQL'), form, state, output);
}
