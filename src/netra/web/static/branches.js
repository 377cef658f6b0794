// Branches: an edit or a regeneration makes one, and the arrows switch between them; each
// reloads the open thread, whose branch then ends elsewhere.

import { state } from './state.js';
import { api } from './api.js';
import { h, toolButton, uuid } from './dom.js';
import { openThread } from './thread.js';
import { scheduleRender } from './render.js';
import { showComposerError } from './errors.js';

/** ‹ 2/3 › between the versions of a question or the answers to it. */
export function branchArrows(msg) {
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

export function reopenThread() {
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
export const regenerate = (messageId) => branchAction(`/messages/${encodeURIComponent(messageId)}/regenerate`, {});

export function startEdit(msg) {
  state.view.editing = msg.id;
  scheduleRender();
}

/** The editor that stands in for a question's bubble while it is edited. */
export function showEditor(node, msg) {
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
export function branchMoved(view, leaf) {
  if (!leaf) return false;
  const messages = [...view.messages.values()];
  if (messages.at(-1)?.id === leaf) return false;
  const asked = messages.filter((m) => m.role === 'user').at(-1);
  const run = asked && view.runs.get(asked.run_id);
  return !(run && run.answerId === leaf);  // an answer still shown from its run's events
}
