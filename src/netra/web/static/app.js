// Netra chat page. One module, no framework, no build step.
//
// How it fits together (sections below, in this order):
//   1. DOM handles and helpers
//   2. HTTP: the api() wrapper, sign in / sign out
//   3. State: the thread list and the open thread's view (messages + runs)
//   4. Runs: folding a run's events into steps, answer text and outcome
//   5. Loading a thread over HTTP (also the catch-up path after a reload or a lost stream)
//   6. Rendering: sidebar, messages, composer
//   7. WebSocket: connect, resume, reconnect, frames, events
//   8. Wiring and boot
//
// Two rules keep the live view correct without cleverness:
//   - the socket stream is deduplicated by the per-user `seq` (lastSeq, kept in localStorage);
//   - a run's view is a pure fold of its events kept sorted by seq, so events can arrive from
//     HTTP and from the socket in any order and overlap freely; the result is the same.

import { spendPage } from './spend.js';

// ---------------------------------------------------------------------------------------
// 1. DOM handles and helpers

const $ = (id) => document.getElementById(id);
const dom = {
  authView: $('auth-view'), authForm: $('auth-form'), authError: $('auth-error'),
  appView: $('app-view'), sidebar: $('sidebar'), scrim: $('scrim'), toggle: $('sidebar-toggle'),
  threadList: $('thread-list'), newChat: $('new-chat'), signOut: $('sign-out'),
  userEmail: $('user-email'), title: $('thread-title'), conn: $('conn-status'),
  messages: $('messages'), composer: $('composer'), input: $('composer-input'),
  send: $('send-btn'), stop: $('stop-btn'), composerError: $('composer-error'),
  agent: $('agent-select'), threadAgent: $('thread-agent'), threadActions: $('thread-actions'),
  renameThread: $('rename-thread'), deleteThread: $('delete-thread'),
  pinThread: $('pin-thread'), archiveThread: $('archive-thread'), showArchived: $('show-archived'),
  olderMessages: $('older-messages'), search: $('thread-search'),
  searchResults: $('search-results'),
  chatView: $('chat-view'), spendView: $('spend-view'), openSpend: $('open-spend'),
  closeSpend: $('close-spend'),
};

/** Create an element; text always goes through textContent, never innerHTML. */
function h(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

/** Only touch the DOM when the text changed, so streaming does not reset a selection. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/**
 * A model's answer as Markdown (marked, vendored), sanitised by DOMPurify (vendored) before
 * it reaches the DOM, so model output can never inject script; links open in a new tab, and
 * each code block gets a Copy button. Rendered again only when the text changed.
 */
function setMarkdown(node, text) {
  if (node.markdownSource === text) return;
  node.markdownSource = text;
  const html = window.marked.parse(text, { gfm: true, breaks: true, async: false }).trim();
  node.innerHTML = window.DOMPurify.sanitize(html);
  for (const link of node.querySelectorAll('a[href]')) {
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
  }
  for (const pre of node.querySelectorAll('pre')) {
    const copy = h('button', 'copy-code', 'Copy');
    copy.type = 'button';
    copy.addEventListener('click', () => copyText(pre.querySelector('code')?.textContent ?? '', copy));
    pre.append(copy);
  }
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = 'Copied';
  } catch {
    button.textContent = 'Copy failed';  // no clipboard outside a secure context
  }
  setTimeout(() => { button.textContent = 'Copy'; }, 1500);
}

// crypto.randomUUID exists only in secure contexts (https, localhost); a plain-http LAN
// install still needs unique client_msg_ids, so fall back to getRandomValues.
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function shortTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString([], { month: 'short', day: 'numeric' });
}

const asText = (v) => (typeof v === 'string' ? v : JSON.stringify(v));

// ---------------------------------------------------------------------------------------
// 2. HTTP

const TOKEN_KEY = 'netra.token';
const REFRESH_KEY = 'netra.refresh';

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let refreshTimer = null;
function storeTokens(pair) {
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
async function api(path, { method = 'GET', body, auth = true, retried = false } = {}) {
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
  if (res.status === 401 && auth) signOut('Your session has ended. Please sign in again.');
  // A 422 lists the fields at fault; "password: …" says more than "the request is not valid".
  const fields = (err.details ?? []).map((d) => `${String(d.field ?? '').replace(/^body\./, '')}: ${d.message}`);
  const message = [err.message || `${res.status} ${res.statusText}`, ...fields].join(' — ');
  throw new ApiError(res.status, err.code, message);
}

async function submitAuth(event) {
  event.preventDefault();
  const register = event.submitter?.value === 'register';
  const form = new FormData(dom.authForm);
  const creds = { email: String(form.get('email')).trim(), password: String(form.get('password')) };
  const buttons = dom.authForm.querySelectorAll('button');
  buttons.forEach((b) => { b.disabled = true; });
  dom.authError.textContent = '';
  try {
    if (register) await api('/auth/register', { method: 'POST', body: creds, auth: false });
    storeTokens(await api('/auth/login', { method: 'POST', body: creds, auth: false }));
    dom.authForm.reset();
    await startSession();
  } catch (err) {
    dom.authError.textContent = err.message;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

async function startSession() {
  try {
    state.user = await api('/me');
  } catch (err) {
    // A 401 already returned us to the sign-in form; anything else is worth showing there.
    if (state.token) showAuth(err.message);
    return;
  }
  dom.userEmail.textContent = state.user.email;
  dom.openSpend.hidden = !state.user.roles?.includes('admin');
  showSpend(false);
  dom.authView.hidden = true;
  dom.appView.hidden = false;
  refreshThreads();
  loadAgents();
  openThread(threadFromHash(), { force: true });
  connect();
}

/** The agents this user may start: a picker for new chats when there is a choice. */
async function loadAgents() {
  const { items = [] } = await api('/agents').catch(() => ({}));
  dom.agent.replaceChildren(...items.map((agent) => {
    const option = h('option', null, agent.name);
    option.value = agent.name;
    option.title = agent.description ?? '';
    return option;
  }));
  state.agents = items;
  renderSidebar();
  renderComposer();
}

/** The admins' spend page in place of the chat, or the chat again. */
function showSpend(open) {
  dom.spendView.hidden = !open;
  dom.chatView.hidden = open;
  if (open) {
    closeSidebar();
    spend.show();
  }
}

function signOut(message = '') {
  if (state.token && !message) {
    // Ends the session on the server too: its tokens stop working, its other sockets close.
    fetch('/auth/logout', { method: 'POST', headers: { Authorization: `Bearer ${state.token}` } })
      .catch(() => {});
  }
  state.token = null;
  clearTimeout(refreshTimer);
  localStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(REFRESH_KEY);
  disconnect();
  clearSearch();
  Object.assign(state, freshState());
  setText(dom.showArchived, 'Archived chats');
  history.replaceState(null, '', location.pathname);
  showAuth(message);
}

function showAuth(message) {
  dom.appView.hidden = true;
  dom.authView.hidden = false;
  dom.authError.textContent = message || '';
  dom.authForm.elements.email.focus();
}

// ---------------------------------------------------------------------------------------
// 3. State

const FINAL = new Set(['completed', 'failed', 'cancelled', 'timed_out', 'interrupted']);

function freshState() {
  return {
    user: null,
    threads: [],              // GET /threads, newest activity first, as many pages as loaded
    pinned: [],               // the pinned threads, listed above the others
    archive: false,           // the list shows the archived threads instead
    olderThreads: null,       // the cursor of the next page of threads; null: all are here
    activity: new Set(),      // ids of other threads that had events since we last opened them
    view: newView(null),      // the open thread; threadId null = a new, unsent chat
    pendingSends: new Map(),  // client_msg_id -> send_message frame, until its ack
    lastSeq: null,            // newest socket event seq applied
    agents: [],               // GET /agents: what this user may start
  };
}

/** The open thread. Replaced wholesale when another thread is opened. */
function newView(threadId) {
  return {
    threadId,
    messages: new Map(),  // id -> message, in display order (optimistic ones keyed by client id)
    runs: new Map(),      // run_id -> run (see section 4)
    nodes: new Map(),     // block key -> DOM node, for cheap re-rendering
    pendingNew: null,     // client_msg_id of the first message of a new chat, until its ack
    loadGen: 0,           // to drop HTTP answers that a newer load superseded
    stickToBottom: true,
    olderCursor: null,    // where the turns before the loaded ones are read from; null: none
    olderLoaded: false,   // an earlier page was loaded: a reload keeps it and its cursor
    keepScroll: null,     // distance from the bottom to restore after earlier turns came in
  };
}

const state = { token: localStorage.getItem(TOKEN_KEY), ...freshState() };
const spend = spendPage({ api, h, root: dom.spendView });

const seqKey = (userId) => `netra.lastSeq.${userId}`;

function storedLastSeq(userId) {
  const seq = Number(localStorage.getItem(seqKey(userId)) ?? NaN);
  return Number.isSafeInteger(seq) && seq >= 0 ? seq : null;
}

function setLastSeq(seq) {
  state.lastSeq = seq;
  if (state.user) localStorage.setItem(seqKey(state.user.id), String(seq));
}

/** Replace a key of a Map without moving the entry (messages keep their display order). */
function renameKey(map, oldKey, newKey, value) {
  const entries = [...map].map(([k, v]) => (k === oldKey ? [newKey, value] : [k, v]));
  map.clear();
  for (const [k, v] of entries) map.set(k, v);
}

// ---------------------------------------------------------------------------------------
// 4. Runs
//
// A run is { id, events (sorted by seq), baseStatus (from GET /runs/{id} or an ack), loaded
// (its stored events came over HTTP), parentId (a sub-agent's run: the run that delegated to
// it, whose step shows it; it has no block of its own), and the folded fields: status,
// steps, text, outcome, error, started (its agent_started is among the events) }.

function ensureRun(view, runId) {
  let run = view.runs.get(runId);
  if (!run) {
    run = { id: runId, events: [], baseStatus: null, cancelRequested: false };
    foldRun(run);
    view.runs.set(runId, run);
  }
  return run;
}

/** Add one event; apply it incrementally when it is the newest, else re-fold from scratch. */
function addRunEvent(run, ev) {
  const last = run.events.at(-1);
  if (!last || ev.seq > last.seq) {
    run.events.push(ev);
    applyRunEvent(run, ev);
    return;
  }
  if (run.events.some((e) => e.seq === ev.seq)) return;  // already have it
  run.events.push(ev);
  run.events.sort((a, b) => a.seq - b.seq);
  foldRun(run);
}

function foldRun(run) {
  Object.assign(run, {
    status: run.baseStatus, steps: [], text: '', outcome: null, error: null, started: false,
  });
  for (const ev of run.events) applyRunEvent(run, ev);
}

function applyRunEvent(run, ev) {
  const d = ev.data ?? {};
  if (!FINAL.has(run.status)) run.status = 'running';  // any run event means it has started
  switch (ev.type) {
    case 'run_queued': run.status = 'queued'; break;
    case 'agent_started':
      run.started = true;
      run.parentId = d.parent_run_id ?? null;
      break;
    case 'agent_thinking':
      // A run continuing after a pause or on another server: text past text_chars is streamed again.
      if (d.resumed) run.text = run.text.slice(0, d.resumed.text_chars ?? run.text.length);
      run.steps.push({
        kind: 'thinking', text: d.text ?? '', dropped: d.context?.dropped ?? 0, summarized: d.context?.summarized ?? 0,
      });
      break;
    case 'approval_required':
      run.status = 'requires_approval';
      run.steps.push({ kind: 'approval', id: d.tool_call_id, runId: ev.run_id, tool: d.tool, args: d.arguments, sideEffects: d.side_effects });
      break;
    case 'tool_executing': {
      const asked = run.steps.find((s) => s.kind === 'approval' && s.id === d.tool_call_id);
      if (asked) asked.answered = true;
      run.steps.push({ kind: 'tool', id: d.tool_call_id, tool: d.tool, args: d.arguments, status: 'running' });
      break;
    }
    case 'tool_completed': {
      let step = run.steps.find((s) => s.kind === 'tool' && s.id === d.tool_call_id);
      if (!step) run.steps.push((step = { kind: 'tool', id: d.tool_call_id, tool: d.tool }));
      Object.assign(step, { status: d.status === 'ok' ? 'ok' : 'error', result: d.result, error: d.error, ms: d.duration_ms });
      break;
    }
    case 'message_delta': run.text += d.delta ?? ''; break;
    case 'agent_completed':
      run.answerId = d.message_id ?? null;
      run.outcome = d.outcome;
      run.status = d.outcome;
      run.error = d.error ?? null;
      break;
    default: break;
  }
}

/** Status shown for a run: its own events win, but HTTP may already know it is final. */
function runStatus(run) {
  if (run.outcome) return run.outcome;
  if (FINAL.has(run.baseStatus)) return run.baseStatus;
  return run.status;
}

const isActive = (run) => runStatus(run) != null && !FINAL.has(runStatus(run));

function activeRun(view) {
  return [...view.runs.values()].reverse().find((run) => !run.parentId && isActive(run)) ?? null;
}

// ---------------------------------------------------------------------------------------
// 5. Loading over HTTP

const THREAD_PAGE = 50;

/** Whether ``a`` is later than ``b`` by one of their times, then by id (the server's order). */
const later = (field, a, b) => a[field] > b[field] || (a[field] === b[field] && a.id > b.id);

/**
 * Reload the first page of threads; the older pages already loaded stay, minus what moved
 * up into the first page.
 */
async function refreshThreads() {
  try {
    const archive = state.archive;
    const [pinned, { items, next_cursor: next }] = await Promise.all([
      archive ? { items: [] } : api('/threads?pinned=true&limit=200'),
      api(`/threads?limit=${THREAD_PAGE}&${listing()}`),
    ]);
    if (archive !== state.archive) return;  // the other list was asked for meanwhile
    state.pinned = pinned.items;
    const edge = items[items.length - 1];
    const fresh = new Set(items.map((t) => t.id));
    const older = next === null ? [] : state.threads.filter((t) => !fresh.has(t.id) && later('updated_at', edge, t));
    state.threads = [...items, ...older];
    state.olderThreads = older.length ? state.olderThreads : next;
    scheduleRender();
  } catch (err) {
    reportBackgroundError(err);
  }
}

/** What the list holds: the archived threads, or the others less the pinned ones. */
const listing = () => (state.archive ? 'archived=true' : 'pinned=false');

/** Every thread loaded, pinned ones first. */
const loadedThreads = () => [...state.pinned, ...state.threads];

/** The open thread's record, once the list has it. */
const openRecord = () => loadedThreads().find((t) => t.id === state.view.threadId);

/** Change the open thread (its title, pin, archive); every open tab hears thread_updated. */
async function changeThread(change) {
  const threadId = state.view.threadId;
  if (!threadId) return;
  try {
    await api(`/threads/${encodeURIComponent(threadId)}`, { method: 'PATCH', body: change });
    await refreshThreads();
  } catch (err) {
    reportBackgroundError(err);
  }
}

function renameThread() {
  const current = openRecord();
  const title = window.prompt('Rename this chat', current?.title ?? '');
  if (title !== null && title.trim()) changeThread({ title: title.trim() });
}

function togglePin() {
  const current = openRecord();
  if (current) changeThread({ pinned: !current.pinned });
}

function toggleArchive() {
  const current = openRecord();
  if (current) changeThread({ archived: !current.archived });
}

/** Show the archived threads in the list, or the others again. */
function showArchive(archive) {
  state.archive = archive;
  state.threads = [];
  state.pinned = [];
  state.olderThreads = null;
  setText(dom.showArchived, archive ? 'Back to chats' : 'Archived chats');
  scheduleRender();
  refreshThreads();
}

/** Delete the open thread, once confirmed; its runs are cancelled, nothing of it is kept. */
async function deleteThread() {
  const threadId = state.view.threadId;
  if (!threadId || !window.confirm('Delete this chat and everything in it? This cannot be undone.')) return;
  try {
    await api(`/threads/${encodeURIComponent(threadId)}`, { method: 'DELETE' });
    forgetThread(threadId);
  } catch (err) {
    reportBackgroundError(err);
  }
}

/** A thread deleted here or in another tab: out of the list, and closed if open. */
function forgetThread(threadId) {
  state.threads = state.threads.filter((t) => t.id !== threadId);
  state.pinned = state.pinned.filter((t) => t.id !== threadId);
  state.activity.delete(threadId);
  if (state.view.threadId === threadId) openThread(null, { force: true });
  else scheduleRender();
}

/** Scrolling to the end of what is loaded loads the next page (the buttons stay, for
 * keyboards and for screens that show everything already). */
const autoLoad = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    if (entry.target === dom.olderMessages) loadOlderMessages();
    else if (entry.target.classList.contains('more-threads')) loadOlderThreads();
  }
});

/** The next page of older threads, appended. */
async function loadOlderThreads() {
  const cursor = state.olderThreads;
  if (!cursor) return;
  try {
    const page = await api(`/threads?limit=${THREAD_PAGE}&${listing()}&cursor=${encodeURIComponent(cursor)}`);
    if (state.olderThreads !== cursor) return;  // refreshed meanwhile: that page is stale
    const known = new Set(state.threads.map((t) => t.id));
    state.threads = [...state.threads, ...page.items.filter((t) => !known.has(t.id))];
    state.olderThreads = page.next_cursor;
    scheduleRender();
  } catch (err) {
    reportBackgroundError(err);
  }
}

/** Run fn once after a burst of calls (e.g. a resume replay of many events). */
function debounce(fn, ms) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

const refreshThreadsSoon = debounce(refreshThreads, 300);
// The stored answer replaces the streamed one once a run ends (same text, but authoritative).
const reloadThreadSoon = debounce(() => { if (state.view.threadId) loadThread(state.view); }, 200);

/**
 * Fetch the open thread's messages and merge them in, then catch up on runs that are not
 * known to be final: their in-progress answer is not among the messages until they finish,
 * so their step list and partial text come from GET /runs/{id}/events.
 */
async function loadThread(view) {
  const gen = ++view.loadGen;
  const threadId = view.threadId;
  let items;
  let olderCursor;
  try {
    ({ items, older_cursor: olderCursor } = await api(`/threads/${encodeURIComponent(threadId)}/messages`));
  } catch (err) {
    if (err.status === 404 && state.view === view) openThread(null);
    else reportBackgroundError(err);
    return;
  }
  if (state.view !== view || gen !== view.loadGen) return;  // the user moved on

  // Earlier turns loaded before stay ahead of this page (the newest turns); then the page
  // in server order; then anything we hold that it does not have yet (an optimistic
  // message, or a message_created that raced this request).
  const page = new Map(items.map((m) => [m.id, m]));
  const oldest = items[0];
  const merged = new Map();
  if (oldest) {
    for (const [id, m] of view.messages) {
      if (!page.has(id) && !m.pending && m.created_at && later('created_at', oldest, m)) merged.set(id, m);
    }
  }
  for (const [id, m] of page) merged.set(id, m);
  for (const [id, m] of view.messages) if (!merged.has(id)) merged.set(id, m);
  view.messages = merged;
  if (!view.olderLoaded) view.olderCursor = olderCursor ?? null;

  const answered = new Set(items.filter((m) => m.role === 'assistant').map((m) => m.run_id));
  const runIds = new Set([...items.map((m) => m.run_id).filter(Boolean), ...view.runs.keys()]);
  const pending = [...runIds].filter((id) => {
    const run = view.runs.get(id);
    return run ? !FINAL.has(runStatus(run)) : !answered.has(id);
  });
  scheduleRender();
  // Only the few most recent: older unanswered runs (e.g. failed long ago) need no live view.
  await Promise.all(pending.slice(-3).map((id) => loadRun(view, id)));
}

/** The page of turns before those loaded, put ahead of them; the reader keeps their place. */
async function loadOlderMessages() {
  const view = state.view;
  const cursor = view.olderCursor;
  if (!cursor || view.loadingOlder) return;
  view.loadingOlder = true;
  try {
    const path = `/threads/${encodeURIComponent(view.threadId)}/messages?before=${encodeURIComponent(cursor)}`;
    const page = await api(path);
    if (state.view !== view || view.olderCursor !== cursor) return;
    const merged = new Map(page.items.map((m) => [m.id, m]));
    for (const [id, m] of view.messages) if (!merged.has(id)) merged.set(id, m);
    view.messages = merged;
    view.olderCursor = page.older_cursor;
    view.olderLoaded = true;
    view.keepScroll = dom.messages.scrollHeight - dom.messages.scrollTop;
    scheduleRender();
  } catch (err) {
    reportBackgroundError(err);
  } finally {
    view.loadingOlder = false;
  }
}

async function loadRun(view, runId) {
  try {
    // Status first, then events: if the run is final by now, its events include the end.
    const info = await api(`/runs/${encodeURIComponent(runId)}`);
    const { items } = await api(`/runs/${encodeURIComponent(runId)}/events?after_seq=0`);
    if (state.view !== view) return;
    const run = ensureRun(view, runId);
    run.baseStatus = info.status;
    run.parentId = info.parent_run_id ?? null;
    run.loaded = true;
    for (const ev of items) addRunEvent(run, ev);
    foldRun(run);  // baseStatus may have changed
    scheduleRender();
  } catch (err) {
    if (err.status !== 404) reportBackgroundError(err);
  }
}

const threadFromHash = () => decodeURIComponent(location.hash.slice(1)) || null;

/** Open a thread (or a blank new chat when threadId is null). */
function openThread(threadId, { force = false } = {}) {
  closeSidebar();
  if (!force && state.view.threadId === threadId && threadId !== null) return;
  state.view = newView(threadId);
  if (threadId) state.activity.delete(threadId);
  history.replaceState(null, '', threadId ? `#${encodeURIComponent(threadId)}` : location.pathname);
  dom.composerError.textContent = '';
  scheduleRender();
  if (threadId) loadThread(state.view);
  dom.input.focus();
}

// Search: the sidebar's box finds the user's chats by their words (GET /threads/search); the
// hits stand in for the chat list while the box holds any.
const search = { asked: 0, timer: 0 };

function searchSoon() {
  clearTimeout(search.timer);
  search.timer = setTimeout(runSearch, 200);
}

async function runSearch() {
  const q = dom.search.value.trim();
  const asked = ++search.asked;  // an older answer arriving late is dropped
  if (!q) { showHits(null); return; }
  let found;
  try {
    found = await api(`/threads/search?q=${encodeURIComponent(q)}&limit=30`);
  } catch (err) {
    found = { items: [], error: err.message };
  }
  if (asked === search.asked) showHits(found);
}

function clearSearch() {
  clearTimeout(search.timer);
  search.asked += 1;
  dom.search.value = '';
  showHits(null);
}

function showHits(found) {
  dom.searchResults.hidden = !found;
  dom.threadList.hidden = Boolean(found);
  dom.showArchived.hidden = Boolean(found);
  if (!found) { dom.searchResults.replaceChildren(); return; }
  if (!found.items.length) {
    dom.searchResults.replaceChildren(h('li', 'muted search-empty', found.error || 'No chats match.'));
    return;
  }
  dom.searchResults.replaceChildren(...found.items.map((hit) => {
    const btn = h('button', 'search-hit');
    btn.type = 'button';
    btn.dataset.id = hit.thread_id;
    btn.append(
      h('span', 'thread-title ellipsis', hit.title || 'Untitled chat'),
      h('span', 'search-excerpt', hit.message_id ? hit.excerpt : 'in the title'),
    );
    const li = h('li');
    li.append(btn);
    return li;
  }));
}

// ---------------------------------------------------------------------------------------
// 6. Rendering (batched to one pass per animation frame)

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function render() {
  renderSidebar();
  renderMessages();
  renderComposer();
}

function renderSidebar() {
  const { view } = state;
  const threads = loadedThreads();
  const current = openRecord();
  setText(dom.title, current?.title || (view.threadId ? 'Untitled chat' : 'New chat'));
  setText(dom.threadAgent, current?.agent ?? '');
  dom.threadAgent.hidden = !current;
  dom.threadActions.hidden = !view.threadId;
  setText(dom.pinThread, current?.pinned ? 'Unpin' : 'Pin');
  setText(dom.archiveThread, current?.archived ? 'Unarchive' : 'Archive');
  // Which agent each chat uses, in the list too, once there is more than one to choose from.
  const tagged = (state.agents?.length ?? 0) > 1;
  // Rebuild only on change: replacing buttons every streaming frame would swallow clicks.
  const sig = JSON.stringify([threads, [...state.activity], view.threadId, state.olderThreads, tagged]);
  if (dom.threadList.sig === sig) return;
  dom.threadList.sig = sig;
  const shown = dom.threadList.querySelector('button.more-threads');
  if (shown) autoLoad.unobserve(shown);
  dom.threadList.replaceChildren(...threads.map((t) => {
    const li = h('li');
    const btn = h('button', 'thread');
    btn.type = 'button';
    btn.dataset.id = t.id;
    if (t.id === view.threadId) btn.setAttribute('aria-current', 'page');
    if (t.pinned) btn.append(h('span', 'pin', '\u{1F4CC}'));
    btn.append(h('span', 'thread-title ellipsis', t.title || 'Untitled chat'));
    if (tagged) btn.append(h('span', 'thread-agent', t.agent));
    if (state.activity.has(t.id)) btn.append(h('span', 'dot', '\u25CF'));
    btn.append(h('span', 'thread-time', shortTime(t.updated_at)));
    if (state.activity.has(t.id)) btn.title = 'New activity';
    li.append(btn);
    return li;
  }));
  if (state.olderThreads) {
    const more = h('button', 'more-threads', 'Older chats');
    more.type = 'button';
    const li = h('li');
    li.append(more);
    dom.threadList.append(li);
    autoLoad.observe(more);
  }
}

/**
 * The message list as blocks: each user message, followed by the run it started; a run's
 * block shows its steps and its answer (the stored assistant message once there is one,
 * the streamed text until then). Runs not attached to any message go last, but a sub-agent's
 * run, which its parent's delegate step stands for.
 */
function layout(view) {
  const blocks = [];
  const placed = new Set();
  const answers = new Map();
  for (const m of view.messages.values()) if (m.role === 'assistant' && m.run_id) answers.set(m.run_id, m);
  let question = null;
  const placeRun = (runId) => {
    if (placed.has(runId)) return;
    placed.add(runId);
    const run = view.runs.get(runId);
    if (run || answers.has(runId)) blocks.push({ key: `r:${runId}`, run, answer: answers.get(runId), question });
  };
  for (const m of view.messages.values()) {
    if (m.role === 'user') question = m;
    if (m.run_id) {
      if (m.role === 'user') blocks.push({ key: `m:${m.id}`, msg: m });
      placeRun(m.run_id);
    } else {
      blocks.push({ key: `m:${m.id}`, msg: m });
    }
  }
  for (const [runId, run] of view.runs) if (!run.parentId) placeRun(runId);
  return blocks;
}

function renderMessages() {
  const { view } = state;
  const box = dom.messages;
  if (box.view !== view) {  // another thread: start from an empty list
    box.replaceChildren(dom.olderMessages);
    box.view = view;
  }
  const stick = view.stickToBottom || box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const keep = new Set();
  let prev = dom.olderMessages;  // always first: the way to the earlier turns
  for (const block of layout(view)) {
    let node = view.nodes.get(block.key);
    if (!node) {
      node = block.msg ? messageNode() : runNode();
      view.nodes.set(block.key, node);
    }
    if (block.msg) updateMessageNode(node, block.msg);
    else updateRunNode(node, block);
    // Keep DOM order equal to the layout, moving only nodes that are out of place.
    const want = prev ? prev.nextSibling : box.firstChild;
    if (node !== want) box.insertBefore(node, want);
    prev = node;
    keep.add(block.key);
  }
  for (const [key, node] of view.nodes) {
    if (!keep.has(key)) { node.remove(); view.nodes.delete(key); }
  }
  if (view.keepScroll !== null) {
    box.scrollTop = box.scrollHeight - view.keepScroll;
    view.keepScroll = null;
  } else if (stick) {
    box.scrollTop = box.scrollHeight;
  }
  view.stickToBottom = false;
  dom.olderMessages.hidden = !view.olderCursor;
}

function messageNode() {
  const node = h('article', 'msg');
  node.parts = { text: h('div', 'bubble text'), note: h('p', 'note error'), tools: h('div', 'msg-tools') };
  node.append(node.parts.text, node.parts.note, node.parts.tools);
  return node;
}

function updateMessageNode(node, msg) {
  node.className = `msg ${msg.role}${msg.pending ? ' pending' : ''}`;
  node.setAttribute('aria-label', msg.role === 'user' ? 'You' : 'Assistant');
  const editing = state.view.editing === msg.id;
  if (editing) showEditor(node, msg);
  else if (msg.role === 'assistant') setMarkdown(node.parts.text, msg.content);  // a forked copy
  else setText(node.parts.text, msg.content);
  node.parts.text.hidden = editing;
  setText(node.parts.note, msg.failed ? `Not sent: ${msg.failed}` : '');
  const stored = !msg.pending && !msg.failed && state.view.threadId;
  const tools = [];
  if (stored) tools.push(...branchArrows(msg));
  if (stored && msg.role === 'user' && !editing) tools.push(toolButton('Edit', 'Edit this message', () => startEdit(msg)));
  if (stored && msg.role === 'assistant') tools.push(copyButton(msg.content));
  setTools(node.parts.tools, [msg.id, msg.siblings, editing, stored], tools);
}

/** Rebuild a message's buttons only when what they depend on changed. */
function setTools(box, key, buttons) {
  const sig = JSON.stringify(key);
  if (box.sig === sig) return;
  box.sig = sig;
  box.replaceChildren(...buttons);
}

function toolButton(label, title, onClick) {
  const button = h('button', 'msg-tool', label);
  button.type = 'button';
  button.title = title;
  button.addEventListener('click', onClick);
  return button;
}

function copyButton(text) {
  const button = toolButton('Copy', 'Copy the answer', () => copyText(text, button));
  return button;
}

/** ‹ 2/3 › between the versions of a question or the answers to it. */
function branchArrows(msg) {
  const ids = msg.siblings ?? [msg.id];
  if (ids.length < 2) return [];
  const at = ids.indexOf(msg.id);
  const go = (to) => () => switchBranch(ids[to]);
  const prev = toolButton('\u2039', 'Previous version', go(at - 1));
  const next = toolButton('\u203A', 'Next version', go(at + 1));
  prev.setAttribute('aria-label', 'Previous version');
  next.setAttribute('aria-label', 'Next version');
  prev.disabled = at <= 0;
  next.disabled = at >= ids.length - 1;
  const where = h('span', 'branch-count', `${at + 1}/${ids.length}`);
  const box = h('span', 'branch');
  box.append(prev, where, next);
  return [box];
}

function runNode() {
  const node = h('article', 'msg assistant');
  node.setAttribute('aria-label', 'Assistant');
  node.parts = {
    badge: h('span', 'badge'), steps: h('ol', 'steps'),
    text: h('div', 'text'), error: h('p', 'run-error error'), tools: h('div', 'msg-tools'),
  };
  const head = h('div', 'run-head');
  head.append(h('span', 'who', 'Assistant'), node.parts.badge);
  node.append(head, node.parts.steps, node.parts.text, node.parts.error, node.parts.tools);
  return node;
}

const BADGES = {
  queued: 'Queued', running: 'Running', requires_approval: 'Needs approval', failed: 'Failed', cancelled: 'Cancelled',
  timed_out: 'Timed out', interrupted: 'Interrupted',
};

function updateRunNode(node, { run, answer, question }) {
  const status = run ? runStatus(run) : 'completed';
  const active = run ? isActive(run) : false;
  const { badge, steps, text, error } = node.parts;
  setText(badge, BADGES[status] ?? '');
  badge.dataset.status = status ?? '';
  // A run joined midway (the replay after a reload, another tab's run) holds only the tail of
  // its events until loadRun brings the rest: show it working, not its text from mid-sentence.
  const partial = Boolean(run && !run.started && !run.loaded && run.events.length);
  const list = (!partial && run?.steps) || [];
  const answerText = answer?.content ?? (partial ? '' : run?.text ?? '');
  const waiting = active && !answerText && !list.length;
  if (waiting) {
    text.markdownSource = null;
    setText(text, 'Working…');
  } else {
    setMarkdown(text, answerText);
  }
  text.classList.toggle('placeholder', waiting);
  text.hidden = !waiting && !answerText;
  setText(error, run?.error?.message ?? '');
  node.setAttribute('aria-busy', String(active));
  const tools = [];
  if (answer) tools.push(...branchArrows(answer), copyButton(answer.content));
  const again = answer?.id ?? (question && !question.pending ? question.id : null);
  if (!active && again && state.view.threadId) {
    tools.push(toolButton('Regenerate', 'Answer this again', () => regenerate(again)));
  }
  setTools(node.parts.tools, [answer?.id, answer?.siblings, answer?.content, active, again], tools);

  // Rebuild the step list only when it changed (cheap to compare, steps are few).
  const sig = JSON.stringify([list, active]);
  if (steps.sig === sig) return;
  steps.sig = sig;
  steps.hidden = list.length === 0;
  steps.replaceChildren(...list.map((step, i) => stepNode(step, active && i === list.length - 1)));
}

// Branches: an edit or a regeneration makes one, and the arrows switch between them; each
// reloads the open thread, whose branch then ends elsewhere.

function reopenThread() {
  const threadId = state.view.threadId;
  if (threadId) openThread(threadId, { force: true });
}

async function branchAction(path, body, method = 'POST') {
  try {
    await api(`/threads/${encodeURIComponent(state.view.threadId)}${path}`, { method, body });
    reopenThread();
  } catch (err) {
    showComposerError(err.message || 'Something went wrong.');
  }
}

const switchBranch = (messageId) => branchAction('/active_leaf', { message_id: messageId }, 'PUT');
const regenerate = (messageId) => branchAction(`/messages/${encodeURIComponent(messageId)}/regenerate`, {});

function startEdit(msg) {
  state.view.editing = msg.id;
  scheduleRender();
}

/** The editor that stands in for a question's bubble while it is edited. */
function showEditor(node, msg) {
  if (node.editor?.msgId === msg.id) return;
  node.editor?.remove();
  const form = h('form', 'edit-form');
  form.msgId = msg.id;
  const box = h('textarea', 'edit-input');
  box.value = msg.content;
  box.setAttribute('aria-label', 'Edit message');
  const save = h('button', 'primary', 'Send');
  save.type = 'submit';
  const cancel = toolButton('Cancel', 'Keep the message as it is', () => {
    state.view.editing = null;
    node.editor = null;
    form.remove();
    scheduleRender();
  });
  const actions = h('div', 'edit-actions');
  actions.append(save, cancel);
  form.append(box, actions);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const content = box.value.trim();
    if (!content) return;
    save.disabled = true;
    branchAction(`/messages/${encodeURIComponent(msg.id)}/edit`, { content, client_msg_id: uuid() });
  });
  node.editor = form;
  node.parts.text.after(form);
  box.focus();
}

/** Whether the thread's branch now ends somewhere this view does not: another tab switched it. */
function branchMoved(view, leaf) {
  if (!leaf) return false;
  const messages = [...view.messages.values()];
  if (messages.at(-1)?.id === leaf) return false;
  const asked = messages.filter((m) => m.role === 'user').at(-1);
  const run = asked && view.runs.get(asked.run_id);
  return !(run && run.answerId === leaf);  // an answer still shown from its run's events
}

/** Answer a tool call that waits for approval: over the socket, or HTTP when it is down. */
async function decide(step, decision) {
  step.sending = decision;
  render();
  const frame = { type: 'approve_tool', run_id: step.runId, tool_call_id: step.id, decision };
  if (!wsSend(frame)) {
    const path = `/runs/${encodeURIComponent(step.runId)}/tool_calls/${encodeURIComponent(step.id)}/decision`;
    await api(path, { method: 'POST', body: { decision } }).catch(() => { step.sending = null; render(); });
  }
}

function approvalNode(step) {
  const li = h('li', 'step approval');
  li.dataset.status = step.answered ? 'done' : 'waiting';
  li.append(h('span', 'step-icon', '?'), h('span', 'step-label', step.tool ?? 'tool'));
  if (step.args !== undefined) li.append(h('code', 'step-args', asText(step.args)));
  if (step.answered) return li;
  const note = step.sideEffects === 'unsafe' ? 'wants to do something that cannot be undone.' : 'needs your approval.';
  li.append(h('span', 'step-detail', note));
  for (const [decision, label] of [['approve', 'Approve'], ['deny', 'Deny']]) {
    const button = h('button', decision === 'approve' ? 'primary' : 'secondary', label);
    button.type = 'button';
    button.disabled = Boolean(step.sending);
    button.addEventListener('click', () => decide(step, decision));
    li.append(button);
  }
  return li;
}

function stepNode(step, isLast) {
  if (step.kind === 'approval') return approvalNode(step);
  if (step.kind === 'thinking') {
    // The agent's own words ("Thinking…", "Reading the tool results…"); the icon spins
    // while it is the newest step of a live run.
    const li = h('li', 'step thinking');
    li.dataset.status = isLast ? 'running' : 'done';
    li.append(h('span', 'step-icon', isLast ? '\u25CC' : '\u2022'), h('span', 'step-detail', step.text || 'Thinking…'));
    // What the model was sent only in summary, or not at all: the reader knows why it may
    // not remember.
    const turns = (n) => (n === 1 ? '1 earlier turn' : `${n} earlier turns`);
    if (step.summarized) li.append(h('span', 'step-note', `(${turns(step.summarized)} summarised to fit the model)`));
    if (step.dropped) li.append(h('span', 'step-note', `(${turns(step.dropped)} left out to fit the model)`));
    return li;
  }
  const li = h('li', 'step tool');
  li.dataset.status = step.status ?? 'running';
  const icon = { running: '\u25CC', ok: '\u2713', error: '\u2717' }[step.status] ?? '\u25CC';
  li.append(h('span', 'step-icon', icon), h('span', 'visually-hidden', `${step.status ?? 'running'}: `));
  li.append(h('span', 'step-label', step.tool ?? 'tool'));
  if (step.args !== undefined) li.append(jsonNode('step-args', step.args));
  if (step.status === 'ok') li.append(h('span', 'arrow', '\u2192'), jsonNode('step-result', step.result));
  if (step.status === 'error') li.append(h('span', 'step-error', step.error?.message ?? 'failed'));
  if (step.ms != null) li.append(h('span', 'step-ms', `${Math.round(step.ms)} ms`));
  return li;
}

/** A tool's arguments or result: one line, as sent; opened, pretty-printed JSON. */
function jsonNode(className, value) {
  const box = h('details', `json ${className}`);
  const pretty = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
  box.append(h('summary', null, asText(value)), h('pre', null, pretty));
  return box;
}

function renderComposer() {
  // A message the server refused (too long, over a quota…) goes back into the composer, when
  // that is empty, to be edited and sent again; the list keeps it, marked "Not sent".
  for (const msg of state.view.messages.values()) {
    if (!msg.failed || msg.returned) continue;
    msg.returned = true;
    if (!dom.input.value) {
      dom.input.value = msg.content;
      autosize();
    }
  }
  const run = activeRun(state.view);
  dom.stop.hidden = !run;
  dom.stop.disabled = Boolean(run?.cancelRequested);
  setText(dom.stop, run?.cancelRequested ? 'Stopping…' : 'Stop');
  dom.send.disabled = Boolean(state.view.pendingNew);  // wait for the new thread's id
  // A thread keeps the agent it was started with; the choice is for new chats only.
  dom.agent.hidden = Boolean(state.view.threadId) || (state.agents?.length ?? 0) < 2;
}

function showComposerError(message) {
  dom.composerError.textContent = message;
}

/** Background loads: network failures already show as "Reconnecting…"; server errors do not. */
function reportBackgroundError(err) {
  if (err instanceof ApiError && state.token) showComposerError(err.message);
}

function setConnStatus(kind) {
  const labels = { connected: 'Connected', connecting: 'Connecting…', reconnecting: 'Reconnecting…' };
  dom.conn.dataset.state = kind;
  setText(dom.conn, labels[kind]);
}

// ---------------------------------------------------------------------------------------
// 7. WebSocket

const PING_MS = 25_000;
const conn = { ws: null, attempt: 0, retryTimer: null, pingTimer: null, greeted: false, resumeFrom: null };

function connect() {
  clearTimeout(conn.retryTimer);
  if (!state.token || conn.ws) return;
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  // Where this page stands in the user's stream (in memory, or from an earlier visit): the
  // server replays what came after it before any live event, so nothing is seen twice.
  const after = state.lastSeq ?? (state.user ? storedLastSeq(state.user.id) : null);
  const query = after === null ? '' : `?after_seq=${after}`;
  // The token rides in the subprotocol list: browsers cannot set headers, and URLs get logged.
  const ws = new WebSocket(`${scheme}//${location.host}/ws${query}`, ['bearer', state.token]);
  conn.resumeFrom = after;
  conn.ws = ws;
  conn.greeted = false;
  setConnStatus(conn.attempt === 0 ? 'connecting' : 'reconnecting');
  ws.onmessage = (e) => {
    if (conn.ws !== ws) return;
    let frame;
    try { frame = JSON.parse(e.data); } catch { return; }
    onFrame(frame);
  };
  ws.onclose = (e) => {
    if (conn.ws !== ws) return;  // a socket we already gave up on
    conn.ws = null;
    clearInterval(conn.pingTimer);
    if (e.code !== 1008 && conn.greeted) { scheduleReconnect(); return; }
    // 1008: the token expired or was revoked (or the origin is refused). GET /me decides:
    // it refreshes an expired token and we reconnect with the new one; a 401 signs out.
    api('/me')
      .then(() => { if (e.reason === 'origin not allowed') showComposerError('Live updates refused: origin not allowed'); })
      .catch(() => {})
      .finally(scheduleReconnect);
  };
}

function scheduleReconnect() {
  if (!state.token) return;
  const base = Math.min(10_000, 500 * 2 ** conn.attempt);
  conn.attempt += 1;
  setConnStatus('reconnecting');
  // Jitter spreads out the herd of tabs that all lost the same server at the same moment.
  conn.retryTimer = setTimeout(connect, base / 2 + Math.random() * (base / 2));
}

function disconnect() {
  clearTimeout(conn.retryTimer);
  clearInterval(conn.pingTimer);
  const { ws } = conn;
  conn.ws = null;
  conn.attempt = 0;
  ws?.close(1000);
}

function wsSend(frame) {
  if (conn.ws?.readyState !== WebSocket.OPEN) return false;
  conn.ws.send(JSON.stringify(frame));
  return true;
}

function onFrame(frame) {
  switch (frame.type) {
    case 'connected': onConnected(frame); break;
    case 'resumed': onResumed(frame); break;
    case 'ack': onAck(frame); break;
    case 'error': onErrorFrame(frame); break;
    case 'pong': break;
    case 'tool_decision': break;  // the run's own events show what follows
    case 'cancel_accepted': break;  // likewise: its agent_completed follows
    default:
      if (typeof frame.seq === 'number') onEvent(frame);
  }
}

function onConnected(frame) {
  conn.greeted = true;
  conn.attempt = 0;
  setConnStatus('connected');
  clearInterval(conn.pingTimer);
  conn.pingTimer = setInterval(() => wsSend({ type: 'ping' }), PING_MS);
  if (conn.resumeFrom !== null) {
    state.lastSeq = conn.resumeFrom;  // `resumed` and the replay come next
  } else {
    // First visit from this browser: nothing to replay, HTTP is the source of truth.
    setLastSeq(frame.last_seq);
    if (state.view.threadId) loadThread(state.view);
  }
  // Sends that never got an ack are retried; the server dedupes them by client_msg_id.
  for (const pending of state.pendingSends.values()) wsSend(pending);
}

function onResumed(frame) {
  if (frame.recovered) return;  // the replay follows
  setLastSeq(frame.last_seq);
  refreshThreads();
  if (state.view.threadId) loadThread(state.view);
}

function onEvent(ev) {
  if (state.lastSeq !== null && ev.seq <= state.lastSeq) return;  // seen already
  setLastSeq(ev.seq);
  const { view } = state;
  if (ev.type === 'thread_deleted') {
    forgetThread(ev.data?.thread_id ?? ev.thread_id);
    return;
  }
  if (ev.thread_id && ev.thread_id === view.threadId) {
    applyToView(view, ev);
  } else if (ev.thread_id) {
    // Another thread: never rendered here, only flagged in the sidebar.
    state.activity.add(ev.thread_id);
    scheduleRender();
  }
  if (['message_created', 'thread_updated', 'agent_completed'].includes(ev.type)) refreshThreadsSoon();
}

function applyToView(view, ev) {
  if (ev.type === 'thread_updated' && branchMoved(view, ev.data?.thread?.active_leaf)) {
    reopenThread();
    return;
  }
  if (ev.type === 'message_created') {
    const msg = ev.data?.message;
    const turns = [...view.messages.values()].map((m) => m.turn ?? 0);
    if (msg && !view.messages.has(msg.id) && msg.turn <= Math.max(0, ...turns)) {
      reopenThread();  // an edit, in another tab: a new branch at an earlier turn
      return;
    }
    if (msg && !view.messages.has(msg.id)) {
      // Nothing orders this event against our ack: if it comes first, take over our
      // optimistic copy (same text, still pending) rather than show the message twice.
      const mine = [...view.messages.values()].find((m) => m.pending && m.content === msg.content);
      if (mine) renameKey(view.messages, mine.id, msg.id, msg);
      else view.messages.set(msg.id, msg);
    }
  } else if (ev.run_id) {
    const known = view.runs.has(ev.run_id);
    addRunEvent(ensureRun(view, ev.run_id), ev);
    // Joined a run midway (a resume replay after a reload, another tab's run): its start,
    // and so its first steps and text, comes over HTTP; the merge by seq sorts out overlap.
    if (!known && ev.type !== 'agent_started') loadRun(view, ev.run_id);
    if (ev.type === 'agent_completed') reloadThreadSoon();
  }
  scheduleRender();
}

function onAck(ack) {
  state.pendingSends.delete(ack.client_msg_id);
  const { view } = state;
  const firstOfNewChat = view.threadId === null && view.pendingNew === ack.client_msg_id;
  if (firstOfNewChat) {
    view.threadId = ack.thread_id;
    view.pendingNew = null;
    state.activity.delete(ack.thread_id);
    history.replaceState(null, '', `#${encodeURIComponent(ack.thread_id)}`);
  }
  if (view.threadId === ack.thread_id) {
    const optimistic = view.messages.get(ack.client_msg_id);
    if (optimistic && view.messages.has(ack.message_id)) {
      view.messages.delete(ack.client_msg_id);  // message_created got here first
      view.messages.get(ack.message_id).run_id ??= ack.run_id;
    } else if (optimistic) {
      const stored = { ...optimistic, id: ack.message_id, run_id: ack.run_id, pending: false };
      renameKey(view.messages, ack.client_msg_id, ack.message_id, stored);
    }
    const run = ensureRun(view, ack.run_id);
    if (!run.baseStatus) { run.baseStatus = 'queued'; foldRun(run); }
    // Events of a brand-new thread arrived before we knew its id and went to the sidebar;
    // fetch them over HTTP (merged by seq, so overlap with live events is harmless).
    if (firstOfNewChat) loadThread(view);
  }
  refreshThreadsSoon();
  scheduleRender();
}

function onErrorFrame(frame) {
  const run = frame.ref && state.view.runs.get(frame.ref);
  if (run) run.cancelRequested = false;  // the cancel was refused; offer Stop again
  const failed = frame.ref && state.pendingSends.get(frame.ref);
  if (failed) {
    state.pendingSends.delete(frame.ref);
    const msg = state.view.messages.get(frame.ref);
    if (msg) Object.assign(msg, { pending: false, failed: frame.message });
    if (state.view.pendingNew === frame.ref) state.view.pendingNew = null;
    scheduleRender();
  }
  showComposerError(frame.message || frame.code || 'Something went wrong.');
}

function sendMessage() {
  const content = dom.input.value.trim();
  const { view } = state;
  if (!content || view.pendingNew) return;
  const clientMsgId = uuid();
  const frame = { type: 'send_message', content, client_msg_id: clientMsgId };
  if (view.threadId) frame.thread_id = view.threadId;
  else {
    view.pendingNew = clientMsgId;
    if (dom.agent.value) frame.agent = dom.agent.value;  // the new thread's agent
  }
  // Optimistic: shown now, keyed by client_msg_id until the ack tells the stored id.
  view.messages.set(clientMsgId, { id: clientMsgId, role: 'user', content, run_id: null, pending: true });
  view.stickToBottom = true;
  state.pendingSends.set(clientMsgId, frame);
  wsSend(frame);  // if the socket is down, onConnected sends it
  dom.input.value = '';
  autosize();
  dom.composerError.textContent = '';
  scheduleRender();
}

function stopRun() {
  const run = activeRun(state.view);
  if (!run) return;
  run.cancelRequested = true;
  if (!wsSend({ type: 'cancel_run', run_id: run.id, ref: run.id })) {
    api(`/runs/${encodeURIComponent(run.id)}/cancel`, { method: 'POST' })
      .catch((err) => { run.cancelRequested = false; showComposerError(err.message); scheduleRender(); });
  }
  scheduleRender();
}

// ---------------------------------------------------------------------------------------
// 8. Wiring and boot

function autosize() {
  // Grow with the text up to a limit; the border is outside scrollHeight (border-box sizing).
  const border = dom.input.offsetHeight - dom.input.clientHeight;
  dom.input.style.height = 'auto';
  dom.input.style.height = `${Math.min(dom.input.scrollHeight + border, 200)}px`;
}

/** Narrow screens only: the sidebar slides over the chat (CSS ignores the class when wide). */
function setSidebar(open) {
  dom.appView.classList.toggle('sidebar-open', open);
  dom.scrim.hidden = !open;
  dom.toggle.setAttribute('aria-expanded', String(open));
}
function closeSidebar() { setSidebar(false); }

dom.authForm.addEventListener('submit', submitAuth);
dom.signOut.addEventListener('click', () => signOut());
dom.openSpend.addEventListener('click', () => showSpend(true));
dom.closeSpend.addEventListener('click', () => showSpend(false));
dom.newChat.addEventListener('click', () => openThread(null, { force: true }));
dom.threadList.addEventListener('click', (e) => {
  const btn = e.target.closest('button.thread');
  if (btn) openThread(btn.dataset.id);
  else if (e.target.closest('button.more-threads')) loadOlderThreads();
});
dom.search.addEventListener('input', searchSoon);
dom.search.addEventListener('keydown', (e) => { if (e.key === 'Escape') clearSearch(); });
dom.searchResults.addEventListener('click', (e) => {
  const btn = e.target.closest('button.search-hit');
  if (btn) openThread(btn.dataset.id);
});
dom.renameThread.addEventListener('click', renameThread);
dom.pinThread.addEventListener('click', togglePin);
dom.archiveThread.addEventListener('click', toggleArchive);
dom.showArchived.addEventListener('click', () => showArchive(!state.archive));
dom.olderMessages.addEventListener('click', loadOlderMessages);
autoLoad.observe(dom.olderMessages);
dom.deleteThread.addEventListener('click', deleteThread);
dom.toggle.addEventListener('click', () => setSidebar(!dom.appView.classList.contains('sidebar-open')));
dom.scrim.addEventListener('click', closeSidebar);
document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeSidebar(); });

dom.composer.addEventListener('submit', (e) => { e.preventDefault(); sendMessage(); });
dom.input.addEventListener('keydown', (e) => {
  // Enter sends, Shift+Enter is a newline; never send in the middle of an IME composition.
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    sendMessage();
  }
});
dom.input.addEventListener('input', autosize);
dom.stop.addEventListener('click', stopRun);

window.addEventListener('hashchange', () => {
  if (state.token && threadFromHash() !== state.view.threadId) openThread(threadFromHash());
});
// Coming back online: skip the rest of the backoff.
window.addEventListener('online', () => {
  if (state.token && !conn.ws) { conn.attempt = 0; connect(); }
});

if (state.token) startSession();
else showAuth();
