// DOM handles and helpers: the page's elements by id (`dom`), the element helpers (`h`, a
// message's `toolButton`), text and Markdown into the DOM, the composer's height, the
// sidebar's drawer on narrow screens, and small helpers (ids, times, debounce). Imports
// nothing.

const $ = (id) => document.getElementById(id);
export const dom = {
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
export function h(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

export function toolButton(label, title, onClick) {
  const button = h('button', 'msg-tool', label);
  button.type = 'button';
  button.title = title;
  button.addEventListener('click', onClick);
  return button;
}

/** Grow the composer with its text, up to a limit. */
export function autosize() {
  // The border is outside scrollHeight (border-box sizing).
  const border = dom.input.offsetHeight - dom.input.clientHeight;
  dom.input.style.height = 'auto';
  dom.input.style.height = `${Math.min(dom.input.scrollHeight + border, 200)}px`;
}

/** Only touch the DOM when the text changed, so streaming does not reset a selection. */
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/**
 * A model's answer as Markdown (marked, vendored), sanitised by DOMPurify (vendored) before
 * it reaches the DOM, so model output can never inject script; links open in a new tab, and
 * each code block gets a Copy button. Rendered again only when the text changed.
 */
export function setMarkdown(node, text) {
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

export async function copyText(text, button) {
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
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

export function shortTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString([], { month: 'short', day: 'numeric' });
}

export const asText = (v) => (typeof v === 'string' ? v : JSON.stringify(v));

/** Run fn once after a burst of calls (e.g. a resume replay of many events). */
export function debounce(fn, ms) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

/** Narrow screens only: the sidebar slides over the chat (CSS ignores the class when wide). */
export function setSidebar(open) {
  dom.appView.classList.toggle('sidebar-open', open);
  dom.scrim.hidden = !open;
  dom.toggle.setAttribute('aria-expanded', String(open));
}
export function closeSidebar() { setSidebar(false); }
