// The thread list in the sidebar: its pages (pinned threads first, or the archived ones),
// changes to a thread (rename, pin, archive, delete), and drawing it. (Its drawer on narrow
// screens, setSidebar/closeSidebar, is in dom.js: opening a thread closes it.)

import { later, state } from './state.js';
import { api } from './api.js';
import { debounce, dom, h, setText, shortTime } from './dom.js';
import { loadOlderMessages, openThread } from './thread.js';
import { scheduleRender } from './render.js';
import { reportBackgroundError } from './errors.js';

const THREAD_PAGE = 50;

/**
 * Reload the first page of threads; the older pages already loaded stay, minus what moved
 * up into the first page.
 */
export async function refreshThreads() {
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

export function renameThread() {
  const current = openRecord();
  const title = window.prompt('Rename this chat', current?.title ?? '');
  if (title !== null && title.trim()) changeThread({ title: title.trim() });
}

export function togglePin() {
  const current = openRecord();
  if (current) changeThread({ pinned: !current.pinned });
}

export function toggleArchive() {
  const current = openRecord();
  if (current) changeThread({ archived: !current.archived });
}

/** Show the archived threads in the list, or the others again. */
export function showArchive(archive) {
  state.archive = archive;
  state.threads = [];
  state.pinned = [];
  state.olderThreads = null;
  setText(dom.showArchived, archive ? 'Back to chats' : 'Archived chats');
  scheduleRender();
  refreshThreads();
}

/** Delete the open thread, once confirmed; its runs are cancelled, nothing of it is kept. */
export async function deleteThread() {
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
export function forgetThread(threadId) {
  state.threads = state.threads.filter((t) => t.id !== threadId);
  state.pinned = state.pinned.filter((t) => t.id !== threadId);
  state.activity.delete(threadId);
  if (state.view.threadId === threadId) openThread(null, { force: true });
  else scheduleRender();
}

/** Scrolling to the end of what is loaded loads the next page (the buttons stay, for
 * keyboards and for screens that show everything already). */
export const autoLoad = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    if (entry.target === dom.olderMessages) loadOlderMessages();
    else if (entry.target.classList.contains('more-threads')) loadOlderThreads();
  }
});

/** The next page of older threads, appended. */
export async function loadOlderThreads() {
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

export const refreshThreadsSoon = debounce(refreshThreads, 300);

export function renderSidebar() {
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
