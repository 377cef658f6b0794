// A run's steps on the page: the agent's thinking, its tool calls with their arguments and
// results, and the tool calls that wait for the user's approval (answered from here).

import { api } from './api.js';
import { asText, h } from './dom.js';
import { render } from './render.js';
import { wsSend } from './socket.js';
import { showComposerError } from './errors.js';

/** Answer a tool call that waits for approval: over the socket, or HTTP when it is down. */
async function decide(step, decision) {
  step.sending = decision;
  render();
  const frame = { type: 'approve_tool', run_id: step.runId, tool_call_id: step.id, decision };
  if (!wsSend(frame)) {
    const path = `/runs/${encodeURIComponent(step.runId)}/tool_calls/${encodeURIComponent(step.id)}/decision`;
    await api(path, { method: 'POST', body: { decision } }).catch((err) => {
      step.sending = null;  // offer the buttons again, with what went wrong
      showComposerError(err.message);
      render();
    });
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

export function stepNode(step, isLast) {
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
