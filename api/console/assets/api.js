// REST client of the console: bearer token in sessionStorage, typed errors, feature detection.

const TOKEN_KEY = 'pinhouse.token';
const USER_KEY = 'pinhouse.user';

/** An HTTP error with the server's `{"error":{"code","message"}}` (or Blynk's `{"error":{"message"}}`). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  /** True when the server has no such route at all (the endpoint has not shipped yet). */
  get missingEndpoint() {
    return this.status === 404 && this.message === 'no such endpoint';
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  get user() {
    try { return JSON.parse(sessionStorage.getItem(USER_KEY) || 'null'); } catch { return null; }
  },
  save(token, user) {
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(USER_KEY, JSON.stringify(user));
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
  },
};

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

async function errorOf(resp) {
  let code = `http_${resp.status}`;
  let message = `${resp.status} ${resp.statusText}`.trim();
  try {
    const body = await resp.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch { /* not JSON */ }
  return new ApiError(resp.status, code, message);
}

/** fetch with the bearer token; throws ApiError on non-2xx; returns the Response. */
export async function raw(path, { method = 'GET', body, headers = {}, auth = true } = {}) {
  const init = { method, headers: { ...headers } };
  if (auth && session.token) init.headers.authorization = `Bearer ${session.token}`;
  if (body !== undefined) {
    if (typeof body === 'string') init.body = body;
    else if (body instanceof Blob || body instanceof ArrayBuffer) {
      init.body = body;
      if (!init.headers['content-type']) init.headers['content-type'] = 'application/octet-stream';
    } else { init.body = JSON.stringify(body); init.headers['content-type'] = 'application/json'; }
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', `Cannot reach the server (${e.message}).`);
  }
  if (!resp.ok) {
    const err = await errorOf(resp);
    if (resp.status === 401 && auth) onUnauthorized(err);
    throw err;
  }
  return resp;
}

/** JSON request; 204 → null. */
export async function json(path, options) {
  const resp = await raw(path, options);
  if (resp.status === 204) return null;
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

/** Like `json`, but an endpoint that does not exist yet gives `{missing: true}` instead of throwing. */
export async function optional(path, options) {
  try {
    return { data: await json(path, options) };
  } catch (e) {
    if (e instanceof ApiError && e.missingEndpoint) return { missing: true, path };
    throw e;
  }
}

export async function login(email, password) {
  const reply = await json('/api/v1/auth/login', { method: 'POST', body: { email, password }, auth: false });
  session.save(reply.token, reply.user);
  return reply;
}

export async function logout() {
  try { await raw('/api/v1/auth/logout', { method: 'POST' }); } finally { session.clear(); }
}

export const get = (path) => json(path);
export const post = (path, body) => json(path, { method: 'POST', body });
export const del = (path) => json(path, { method: 'DELETE' });

/** Accepts an invitation with its secret token (no session needed): the new user. */
export async function acceptInvitation(token, password, name) {
  return json('/api/v1/invitations/accept', { method: 'POST', body: { token, password, name }, auth: false });
}

const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');

/**
 * Uploads a firmware binary (a File) for a template: the raw bytes as the body, with its SHA-256
 * in `X-SHA256` when the browser can compute it (secure contexts), so a truncated upload is refused.
 */
export async function uploadFirmware(templateId, file) {
  const headers = { 'content-type': 'application/octet-stream' };
  if (globalThis.crypto && crypto.subtle) {
    try { headers['x-sha256'] = hex(await crypto.subtle.digest('SHA-256', await file.arrayBuffer())); } catch { /* sent without it */ }
  }
  const query = `template_id=${encodeURIComponent(templateId)}&file_name=${encodeURIComponent(file.name || '')}`;
  return json(`/api/v1/firmware?${query}`, { method: 'POST', body: file, headers });
}

/** Blynk device HTTP API with the device's own token (the same calls a device would make). */
export const blynk = {
  async connected(token) {
    return json(`/external/api/isHardwareConnected?token=${encodeURIComponent(token)}`, { auth: false });
  },
  /** Last values of `pins` (numbers) → {pin: value | array | null}. */
  async values(token, pins) {
    if (!pins.length) return {};
    const query = pins.map((p) => `V${p}`).join('&');
    const reply = await json(`/external/api/get?token=${encodeURIComponent(token)}&${query}`, { auth: false });
    const out = {};
    if (pins.length === 1) out[pins[0]] = reply;
    else for (const p of pins) out[p] = reply[`V${p}`] ?? null;
    return out;
  },
  async write(token, pin, value) {
    const values = Array.isArray(value) ? value : [value];
    const query = values.map((v) => `value=${encodeURIComponent(v)}`).join('&');
    await raw(`/external/api/update?token=${encodeURIComponent(token)}&pin=V${pin}&${query}`, { auth: false });
  },
};

/** Runs SQL; `format` json (rows) or csv/parquet (Blob). */
export async function sql(text, format = 'json') {
  const resp = await raw(`/api/v1/sql?format=${format}`, { method: 'POST', body: text, headers: { 'content-type': 'text/plain' } });
  if (format === 'json') return resp.json();
  return resp.blob();
}

/** Online status of many devices, a few requests at a time: Map id → true/false/null (unknown). */
export async function onlineMap(devices) {
  const out = new Map();
  const queue = [...devices];
  async function worker() {
    while (queue.length) {
      const d = queue.shift();
      try { out.set(d.id, await blynk.connected(d.token)); } catch { out.set(d.id, null); }
    }
  }
  await Promise.all([worker(), worker(), worker(), worker()]);
  return out;
}
