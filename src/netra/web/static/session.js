// Sign in / create account, starting a session (its user, agents, threads, socket) and
// signing out (also when the server refuses the session: app.js registers signOut with
// api.js's onSessionLost); and the admins' spend page (spend.js), shown in place of the chat.

import { REFRESH_KEY, TOKEN_KEY, freshState, state } from './state.js';
import { api, refreshTimer, storeTokens } from './api.js';
import { closeSidebar, dom, h, setText } from './dom.js';
import { refreshThreads, renderSidebar } from './sidebar.js';
import { connect, disconnect } from './socket.js';
import { openThread, threadFromHash } from './thread.js';
import { clearSearch } from './search.js';
import { renderComposer } from './composer.js';
import { spendPage } from './spend.js';

const spend = spendPage({ api, h, root: dom.spendView });

export async function submitAuth(event) {
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

export async function startSession() {
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
export function showSpend(open) {
  dom.spendView.hidden = !open;
  dom.chatView.hidden = open;
  if (open) {
    closeSidebar();
    spend.show();
  }
}

export function signOut(message = '') {
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

export function showAuth(message) {
  dom.appView.hidden = true;
  dom.authView.hidden = false;
  dom.authError.textContent = message || '';
  dom.authForm.elements.email.focus();
}
