// HTTP: the api() wrapper (JSON against the same origin, as the signed-in user) and the
// tokens it sends, renewed before they expire or when one is refused.
//
// Hook: onSessionLost(fn) — what a refused session does (fn(message)); app.js registers
// signOut from session.js.

import { REFRESH_KEY, TOKEN_KEY, state } from './state.js';

let sessionLost = () => {};
export function onSessionLost(fn) {
  sessionLost = fn;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export let refreshTimer = null;
export function storeTokens(pair) {
  state.token = pair.access_token;
  localStorage.setItem(TOKEN_KEY, pair.access_token);
  localStorage.setItem(REFRESH_KEY, pair.refresh_token);
  // Renew a minute before expiry so requests rarely meet a stale token.
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => refreshTokens(), Math.max(5, pair.expires_in - 60) * 1000);
}

// Access tokens are short-lived. A refresh token works once: two refreshes racing with the
// same one look like token theft to the server, which ends the session. The tokens are shared
// by every tab through localStorage, and tabs booted from the same stored token see it expire
// (their sockets close) at the same moment. So one refresh at a time, within this tab
// (`refreshing`) and across tabs (a Web Lock, where the browser has them: secure contexts);
// and under the lock, first check whether another tab has renewed the tokens meanwhile.
let refreshing = null;
function refreshTokens(stale = state.token) {
  refreshing ??= new Promise((resolve) => {
    const renew = async () => {
      resolve(await renewTokens(stale).catch(() => false));
      // Other tabs see our localStorage writes a moment later, in no set order with the
      // lock's release: hold the lock briefly so the next holder reads the new tokens.
      await new Promise((done) => { setTimeout(done, 250); });
    };
    if (navigator.locks) navigator.locks.request('netra.refresh', renew).catch(() => resolve(false));
    else renew();
  }).finally(() => { refreshing = null; });
  return refreshing;
}

/** `stale` is the access token that was refused (or is about to expire). */
async function renewTokens(stale) {
  if (!stale) return false;  // signed out
  const current = localStorage.getItem(TOKEN_KEY);
  if (current && current !== stale) {  // another tab (or this one) already renewed them
    state.token = current;
    return true;
  }
  const refreshToken = localStorage.getItem(REFRESH_KEY);
  if (!refreshToken) return false;
  const res = await fetch('/auth/refresh', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
    body: JSON.stringify({ refresh_token: refreshToken }),
  });
  if (!res.ok) return false;
  storeTokens(await res.json());
  return true;
}

/** JSON request against the same origin. A 401 refreshes the tokens once, then signs out. */
export async function api(path, { method = 'GET', body, auth = true, retried = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const sent = auth ? state.token : null;
  if (sent) headers.Authorization = `Bearer ${sent}`;
  const res = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => null);
  if (res.ok) return data;
  const err = data?.error ?? {};
  if (res.status === 401 && auth && !retried && await refreshTokens(sent)) {
    return api(path, { method, body, auth, retried: true });
  }
  if (res.status === 401 && auth) sessionLost('Your session has ended. Please sign in again.');
  // A 422 lists the fields at fault; "password: …" says more than "the request is not valid".
  const fields = (err.details ?? []).map((d) => `${String(d.field ?? '').replace(/^body\./, '')}: ${d.message}`);
  const message = [err.message || `${res.status} ${res.statusText}`, ...fields].join(' — ');
  throw new ApiError(res.status, err.code, message);
}
