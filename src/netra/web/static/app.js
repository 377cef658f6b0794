// Netra chat page. Native ES modules, no framework, no build step; this one is the entry:
// it wires the page's controls and boots.
//
// The modules in layers, bottom first. A module imports only from the layers below it (layer
// 0 imports nothing), so the import graph has no cycles; where a lower module has to call up,
// it exposes a hook that this module fills in at start-up.
//   0  dom.js       DOM handles and helpers, the sidebar's drawer on narrow screens
//      state.js     State: the thread list and the open thread's view (messages + runs)
//      runs.js      Runs: folding a run's events into steps, answer text and outcome
//      render.js    Rendering, batched to one pass per animation frame; hook setRenderers
//      spend.js     The admins' spend page (handed api and h by session.js)
//   1  api.js       HTTP: the api() wrapper and the tokens it sends; hook onSessionLost
//   2  errors.js    The error line under the composer (also for background loads)
//      search.js    Searching the chats from the sidebar
//   3  thread.js    The open thread: opening it, loading it over HTTP (also the catch-up path
//                   after a reload or a lost stream)
//   4  sidebar.js   The thread list: its pages, changes to a thread, rendering the sidebar
//      branches.js  Branches: editing a question, regenerating an answer, switching versions
//   5  socket.js    WebSocket: connect, resume, reconnect, frames, events
//   6  steps.js     Rendering a run's steps; approving a tool call
//      composer.js  The composer: sending, stopping a run
//   7  messages.js  Rendering the messages and the runs' blocks
//      session.js   Sign in / sign out, the start of a session, the admins' spend page
//   8  app.js       This one: fills in the hooks (render.js draws the sidebar, the messages and
//                   the composer; a session the server refuses signs out), wires the page's
//                   controls, boots.
//
// Two rules keep the live view correct without cleverness:
//   - the socket stream is deduplicated by the per-user `seq` (lastSeq, kept in localStorage);
//   - a run's view is a pure fold of its events kept sorted by seq, so events can arrive from
//     HTTP and from the socket in any order and overlap freely; the result is the same.

import { state } from './state.js';
import { autosize, closeSidebar, dom, setSidebar } from './dom.js';
import { setRenderers } from './render.js';
import { onSessionLost } from './api.js';
import { showAuth, showSpend, signOut, startSession, submitAuth } from './session.js';
import {
  autoLoad, deleteThread, loadOlderThreads, renameThread, renderSidebar, showArchive,
  toggleArchive, togglePin,
} from './sidebar.js';
import { clearSearch, searchSoon } from './search.js';
import { loadOlderMessages, openThread, threadFromHash } from './thread.js';
import { renderMessages } from './messages.js';
import { renderComposer, sendMessage, stopRun } from './composer.js';
import { conn, connect } from './socket.js';

setRenderers(renderSidebar, renderMessages, renderComposer);
onSessionLost(signOut);

dom.authForm.addEventListener('submit', submitAuth);
dom.signOut.addEventListener('click', () => signOut());
dom.openSpend.addEventListener('click', () => showSpend(true));
dom.closeSpend.addEventListener('click', () => showSpend(false));
dom.newChat.addEventListener('click', () => openThread(null, { force: true }));
dom.threadList.addEventListener('click', (e) => {
  const btn = e.target.closest('button.thread');
  if (btn) openThread(btn.dataset.id);
  else if (e.target.closest('button.more-threads')) loadOlderThreads();
});
dom.search.addEventListener('input', searchSoon);
dom.search.addEventListener('keydown', (e) => { if (e.key === 'Escape') clearSearch(); });
dom.searchResults.addEventListener('click', (e) => {
  const btn = e.target.closest('button.search-hit');
  if (btn) openThread(btn.dataset.id);
});
dom.renameThread.addEventListener('click', renameThread);
dom.pinThread.addEventListener('click', togglePin);
dom.archiveThread.addEventListener('click', toggleArchive);
dom.showArchived.addEventListener('click', () => showArchive(!state.archive));
dom.olderMessages.addEventListener('click', loadOlderMessages);
autoLoad.observe(dom.olderMessages);
dom.deleteThread.addEventListener('click', deleteThread);
dom.toggle.addEventListener('click', () => setSidebar(!dom.appView.classList.contains('sidebar-open')));
dom.scrim.addEventListener('click', closeSidebar);
document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeSidebar(); });

dom.composer.addEventListener('submit', (e) => { e.preventDefault(); sendMessage(); });
dom.input.addEventListener('keydown', (e) => {
  // Enter sends, Shift+Enter is a newline; never send in the middle of an IME composition.
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    sendMessage();
  }
});
dom.input.addEventListener('input', autosize);
dom.stop.addEventListener('click', stopRun);

window.addEventListener('hashchange', () => {
  if (state.token && threadFromHash() !== state.view.threadId) openThread(threadFromHash());
});
// Coming back online: skip the rest of the backoff.
window.addEventListener('online', () => {
  if (state.token && !conn.ws) { conn.attempt = 0; connect(); }
});

if (state.token) startSession();
else showAuth();
