// The open thread's messages on the page: each user message, then the block of the run it
// started (badge, steps, answer), and the buttons under them (copy, edit, regenerate).

import { state } from './state.js';
import { copyText, dom, h, setMarkdown, setText, toolButton } from './dom.js';
import { isActive, runStatus } from './runs.js';
import { branchArrows, regenerate, showEditor, startEdit } from './branches.js';
import { stepNode } from './steps.js';

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

export function renderMessages() {
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

function copyButton(text) {
  const button = toolButton('Copy', 'Copy the answer', () => copyText(text, button));
  return button;
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
