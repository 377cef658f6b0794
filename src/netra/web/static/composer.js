// The composer: sending a message (shown at once, until its ack) and stopping the active
// run. Its height is dom.js's autosize; the error line under it is errors.js.

import { state } from './state.js';
import { api } from './api.js';
import { autosize, dom, setText, uuid } from './dom.js';
import { activeRun } from './runs.js';
import { scheduleRender } from './render.js';
import { wsSend } from './socket.js';
import { showComposerError } from './errors.js';

export function renderComposer() {
  const run = activeRun(state.view);
  dom.stop.hidden = !run;
  dom.stop.disabled = Boolean(run?.cancelRequested);
  setText(dom.stop, run?.cancelRequested ? 'Stopping…' : 'Stop');
  dom.send.disabled = Boolean(state.view.pendingNew);  // wait for the new thread's id
  // A thread keeps the agent it was started with; the choice is for new chats only.
  dom.agent.hidden = Boolean(state.view.threadId) || (state.agents?.length ?? 0) < 2;
}

export function sendMessage() {
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

export function stopRun() {
  const run = activeRun(state.view);
  if (!run) return;
  run.cancelRequested = true;
  if (!wsSend({ type: 'cancel_run', run_id: run.id, ref: run.id })) {
    api(`/runs/${encodeURIComponent(run.id)}/cancel`, { method: 'POST' })
      .catch((err) => { run.cancelRequested = false; showComposerError(err.message); scheduleRender(); });
  }
  scheduleRender();
}
