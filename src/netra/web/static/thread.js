// The open thread: opening one (or a blank new chat), and loading it over HTTP: its messages,
// the turns before them, its runs' events (also the catch-up path after a reload or a lost
// stream).

import { later, newView, state } from './state.js';
import { api } from './api.js';
import { closeSidebar, debounce, dom } from './dom.js';
import { FINAL, addRunEvent, ensureRun, foldRun, runStatus } from './runs.js';
import { scheduleRender } from './render.js';
import { reportBackgroundError } from './errors.js';

// The stored answer replaces the streamed one once a run ends (same text, but authoritative).
export const reloadThreadSoon = debounce(() => { if (state.view.threadId) loadThread(state.view); }, 200);

/**
 * Fetch the open thread's messages and merge them in, then catch up on runs that are not
 * known to be final: their in-progress answer is not among the messages until they finish,
 * so their step list and partial text come from GET /runs/{id}/events.
 */
export async function loadThread(view) {
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
export async function loadOlderMessages() {
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

export async function loadRun(view, runId) {
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

export const threadFromHash = () => decodeURIComponent(location.hash.slice(1)) || null;

/** Open a thread (or a blank new chat when threadId is null). */
export function openThread(threadId, { force = false } = {}) {
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
