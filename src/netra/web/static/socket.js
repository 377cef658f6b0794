// WebSocket: connect, resume, reconnect, frames, events. The stream is deduplicated by the
// per-user `seq` (state.lastSeq, kept in localStorage); its events go into the state, and
// reload the open thread, the thread list or the branch they change. The views that send
// over it (composer.js, steps.js) sit above it.

import { renameKey, setLastSeq, state, storedLastSeq } from './state.js';
import { api } from './api.js';
import { autosize, dom, setText } from './dom.js';
import { addRunEvent, ensureRun, foldRun } from './runs.js';
import { forgetThread, refreshThreads, refreshThreadsSoon } from './sidebar.js';
import { loadRun, loadThread, reloadThreadSoon } from './thread.js';
import { branchMoved, reopenThread } from './branches.js';
import { scheduleRender } from './render.js';
import { showComposerError } from './errors.js';

const PING_MS = 25_000;
export const conn = { ws: null, attempt: 0, retryTimer: null, pingTimer: null, greeted: false, resumeFrom: null };

function setConnStatus(kind) {
  const labels = { connected: 'Connected', connecting: 'Connecting…', reconnecting: 'Reconnecting…' };
  dom.conn.dataset.state = kind;
  setText(dom.conn, labels[kind]);
}

export function connect() {
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

export function disconnect() {
  clearTimeout(conn.retryTimer);
  clearInterval(conn.pingTimer);
  const { ws } = conn;
  conn.ws = null;
  conn.attempt = 0;
  ws?.close(1000);
}

export function wsSend(frame) {
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
    if (msg) {
      Object.assign(msg, { pending: false, failed: frame.message });
      // Refused (too long, over a quota…): back into the composer, when that is empty, to be
      // edited and sent again; the list keeps it, marked "Not sent".
      if (!dom.input.value) {
        dom.input.value = msg.content;
        autosize();
      }
    }
    if (state.view.pendingNew === frame.ref) state.view.pendingNew = null;
    scheduleRender();
  }
  showComposerError(frame.message || frame.code || 'Something went wrong.');
}
