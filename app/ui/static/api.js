// The HTTP API, as this page calls it: JSON in and out, the session cookie sent by the browser,
// and on every change the CSRF token that sign-in left in the readable `fm_csrf` cookie.

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === 'string' ? detail : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

const SAFE = new Set(['GET', 'HEAD']);

export function csrfToken() {
  const cookie = document.cookie.split('; ').find((part) => part.startsWith('fm_csrf='));
  return cookie ? decodeURIComponent(cookie.slice('fm_csrf='.length)) : null;
}

export function request(path, {method = 'GET', body, type, headers = {}, signal} = {}) {
  const init = {method, headers: {Accept: 'application/json', ...headers}, signal,
    credentials: 'same-origin'};
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['Content-Type'] = type || 'application/json';
  }
  const token = csrfToken();
  if (!SAFE.has(method) && token) init.headers['X-CSRF-Token'] = token;
  return fetch(path, init);
}

/** The answer's JSON (null for 204); an ApiError for any other than 2xx. */
export async function api(path, options) {
  const answer = await request(path, options);
  if (answer.status === 204) return null;
  const text = await answer.text();
  let data = text;
  try { data = text ? JSON.parse(text) : null; } catch { /* a plain-text answer */ }
  if (!answer.ok) throw new ApiError(answer.status, data && data.detail !== undefined ? data.detail : data);
  return data;
}

export const enc = encodeURIComponent;

export const FINISHED_RUN = new Set(['completed', 'failed', 'cancelled']);
export const RETRYABLE_RUN = new Set(['failed', 'cancelled']);
export const FINISHED_STEP = new Set(['completed', 'failed', 'skipped', 'cancelled']);
