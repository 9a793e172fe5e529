// The session and the HTTP client. The token pair lives in sessionStorage (gone when the tab closes, not shared
// with other tabs); the access token is refreshed shortly before it expires, and once more on a 401.

/** Where the server's API lives: this file is served at `<base>/admin/js/api.js`. */
export const apiRoot = new URL('../../', import.meta.url);
/** Where the console lives (`<base>/admin/`). */
export const appRoot = new URL('../', import.meta.url);

const STORE = 'tessera.admin.session';

/** An API failure: HTTP status, the server's `error` code and `message`. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The JSON payload of a JWT (no verification: the server does that; we only read exp and stk). */
export function decodeJwt(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(part.padEnd(part.length + ((4 - (part.length % 4)) % 4), '=')), (c) =>
      c.charCodeAt(0),
    );
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

let session = load();
let timer = null;
let refreshing = null;
const listeners = new Set();

function load() {
  try {
    const s = JSON.parse(sessionStorage.getItem(STORE) || 'null');
    return s && s.token && s.refresh ? s : null;
  } catch {
    return null;
  }
}

function save(next, reason) {
  session = next;
  if (next) sessionStorage.setItem(STORE, JSON.stringify(next));
  else sessionStorage.removeItem(STORE);
  schedule();
  for (const f of listeners) f(session, reason);
}

/** Calls `f(session, reason)` whenever the session starts, refreshes or ends. */
export function onSession(f) {
  listeners.add(f);
}

export function current() {
  return session;
}

/** The claims of the current token, or `{}`. */
export function claims() {
  return session ? decodeJwt(session.token) : {};
}

/** Refresh when three quarters of the token's life have passed (at least 15 s before it expires). */
function schedule() {
  clearTimeout(timer);
  if (!session) return;
  const { exp, iat } = decodeJwt(session.token);
  if (!exp) return;
  const now = Date.now() / 1000;
  const life = iat ? exp - iat : 600;
  const at = Math.min(exp - life / 4, exp - 15);
  timer = setTimeout(() => refresh().catch(() => {}), Math.max(1, at - now) * 1000);
}

async function post(path, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  return fetch(new URL(path, apiRoot), { method: 'POST', headers, body: JSON.stringify(body) });
}

/**
 * Signs in; resolves to the session or rejects with an ApiError: 401 for bad credentials, or 401 with code
 * `mfa_required` and `mfaToken` when the account has a second factor (then call `signInWithCode`).
 */
export async function signIn(username, password, provider) {
  const body = { username, password };
  if (provider) body.provider = provider;
  return started(await post('api/login', body), username);
}

/**
 * Signs in through the upstream OpenID provider `name` (Stoke's `/oidc/<name>` with `xfer=window`): a popup goes
 * through the provider, and its last page posts the exchange pair here, which `/api/login` redeems. Resolves to
 * the session, or rejects as `signIn` does (also when the popup is closed or blocked).
 */
export function signInWithProvider(name) {
  const url = new URL(`oidc/${encodeURIComponent(name)}`, apiRoot);
  url.searchParams.set('xfer', 'window');
  const popup = window.open(url, 'tessera-oidc', 'popup,width=520,height=680');
  if (!popup) return Promise.reject(Object.assign(new Error('The sign-in window was blocked.'), { code: 'popup_blocked' }));
  return new Promise((resolve, reject) => {
    let settled = false;
    // A closed popup ends the wait a second later: its last message may still be on its way.
    const closed = setInterval(() => {
      if (!popup.closed) return;
      clearInterval(closed);
      setTimeout(
        () => finish(() => reject(Object.assign(new Error('The sign-in window was closed.'), { code: 'popup_closed' }))),
        1000,
      );
    }, 500);
    function finish(then) {
      if (settled) return;
      settled = true;
      clearInterval(closed);
      window.removeEventListener('message', onMessage);
      then();
    }
    function onMessage(event) {
      // Only the callback page of this server, in the popup this call opened.
      if (event.origin !== window.location.origin || event.source !== popup) return;
      let data = event.data;
      try {
        if (typeof data === 'string') data = JSON.parse(data);
      } catch {
        return;
      }
      if (!data || !data.id_token || !data.access_code) return;
      finish(() => signIn(data.id_token, data.access_code, name).then(resolve, reject));
    }
    window.addEventListener('message', onMessage);
  });
}

/** The second step of a sign-in: `{code}` or `{recovery_code}` for the token of `mfa_required`. */
export async function signInWithCode(mfaToken, answer, username) {
  return started(await post('api/login/mfa', { mfa_token: mfaToken, ...answer }), username);
}

async function started(res, username) {
  if (!res.ok) throw await failure(res);
  const data = await res.json();
  save({ token: data.token, refresh: data.refresh, username: data.username || username }, 'signin');
  return session;
}

/** Trades the refresh token for a new pair; on failure the session ends. */
export function refresh() {
  if (!session) return Promise.reject(new ApiError(401, 'signed_out', 'Not signed in.'));
  if (!refreshing) {
    const old = session;
    refreshing = post('api/refresh', { refresh: old.refresh }, old.token)
      .then(async (res) => {
        if (!res.ok) {
          const err = await failure(res);
          // Only a definite refusal ends the session; a busy or unreachable server is retried next time.
          if (res.status === 401) save(null, 'expired');
          throw err;
        }
        const data = await res.json();
        save({ ...old, token: data.token, refresh: data.refresh }, 'refresh');
        return session;
      })
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

/** Ends the session here, and on the server when it supports `/api/logout`. */
export async function signOut() {
  const old = session;
  save(null, 'signout');
  if (old) {
    try {
      await post('api/logout', { refresh: old.refresh }, old.token);
    } catch {
      // Best effort: the token pair is gone from this tab either way.
    }
  }
}

async function failure(res) {
  let body = {};
  try {
    body = await res.json();
  } catch {
    // Not JSON (a proxy's error page): fall back to the status.
  }
  const message =
    body.message ||
    {
      401: 'Wrong username or password.',
      403: 'Your account is not allowed to do this.',
      404: 'Not found.',
      429: 'Too many attempts; wait a moment and try again.',
      503: 'The server is busy or its database is unreachable; try again shortly.',
    }[res.status] ||
    `The server answered ${res.status} ${res.statusText}.`;
  const err = new ApiError(res.status, body.error || `http_${res.status}`, message);
  if (body.mfa_token) err.mfaToken = body.mfa_token;
  return err;
}

/**
 * An authenticated request. `path` is relative to the API root (`api/admin/users`); `query` an object of
 * parameters. Resolves to the parsed JSON (text for non-JSON bodies, null for 204) or rejects with an ApiError.
 */
export async function request(method, path, { body, query } = {}) {
  const url = new URL(path, apiRoot);
  for (const [k, v] of Object.entries(query || {})) url.searchParams.set(k, v);
  const send = () => {
    const headers = {};
    if (session) headers.Authorization = `Bearer ${session.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  };
  let res;
  try {
    res = await send();
    if (res.status === 401 && session) {
      await refresh();
      res = await send();
    }
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(0, 'network', 'Cannot reach the server; check your connection and try again.');
  }
  if (!res.ok) throw await failure(res);
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export const get = (path, query) => request('GET', path, { query });
export const del = (path) => request('DELETE', path);
export const postJson = (path, body) => request('POST', path, { body });
export const patch = (path, body) => request('PATCH', path, { body });

/** Every page of a Stoke list endpoint (255 per request), up to `max` items. */
export async function all(path, max = 5000) {
  const out = [];
  for (let page = 1; out.length < max; page++) {
    const rows = await get(path, { page, itemsPerPage: 255 });
    out.push(...rows);
    if (rows.length < 255) break;
  }
  return out;
}

/** Public endpoints, no token. */
export async function publicJson(path) {
  const res = await fetch(new URL(path, apiRoot));
  if (!res.ok) throw await failure(res);
  return res.json();
}

// A session restored from sessionStorage (a reload) gets its refresh timer too.
schedule();
