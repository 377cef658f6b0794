// State: the thread list and the open thread's view (messages + runs). `state` is owned here,
// one object for the whole page: other modules change its fields, never replace it. Also what
// is kept in localStorage (the tokens' keys, the newest seq applied) and the server's order of
// threads and messages (`later`).

export const TOKEN_KEY = 'netra.token';
export const REFRESH_KEY = 'netra.refresh';

export function freshState() {
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
export function newView(threadId) {
  return {
    threadId,
    messages: new Map(),  // id -> message, in display order (optimistic ones keyed by client id)
    runs: new Map(),      // run_id -> run (see runs.js)
    nodes: new Map(),     // block key -> DOM node, for cheap re-rendering
    pendingNew: null,     // client_msg_id of the first message of a new chat, until its ack
    loadGen: 0,           // to drop HTTP answers that a newer load superseded
    stickToBottom: true,
    olderCursor: null,    // where the turns before the loaded ones are read from; null: none
    olderLoaded: false,   // an earlier page was loaded: a reload keeps it and its cursor
    loadingOlder: false,  // an earlier page is being read: a second scroll does not ask again
    editing: null,        // id of the message being edited in place, if any
    keepScroll: null,     // distance from the bottom to restore after earlier turns came in
  };
}

export const state = { token: localStorage.getItem(TOKEN_KEY), ...freshState() };

const seqKey = (userId) => `netra.lastSeq.${userId}`;

export function storedLastSeq(userId) {
  const seq = Number(localStorage.getItem(seqKey(userId)) ?? NaN);
  return Number.isSafeInteger(seq) && seq >= 0 ? seq : null;
}

export function setLastSeq(seq) {
  state.lastSeq = seq;
  if (state.user) localStorage.setItem(seqKey(state.user.id), String(seq));
}

/** Whether ``a`` is later than ``b`` by one of their times, then by id (the server's order). */
export const later = (field, a, b) => a[field] > b[field] || (a[field] === b[field] && a.id > b.id);

/** Replace a key of a Map without moving the entry (messages keep their display order). */
export function renameKey(map, oldKey, newKey, value) {
  const entries = [...map].map(([k, v]) => (k === oldKey ? [newKey, value] : [k, v]));
  map.clear();
  for (const [k, v] of entries) map.set(k, v);
}
