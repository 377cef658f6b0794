// Search: the sidebar's box finds the user's chats by their words (GET /threads/search); the
// hits stand in for the chat list while the box holds any.

import { api } from './api.js';
import { dom, h } from './dom.js';

const search = { asked: 0, timer: 0 };

export function searchSoon() {
  clearTimeout(search.timer);
  search.timer = setTimeout(runSearch, 200);
}

async function runSearch() {
  const q = dom.search.value.trim();
  const asked = ++search.asked;  // an older answer arriving late is dropped
  if (!q) { showHits(null); return; }
  let found;
  try {
    found = await api(`/threads/search?q=${encodeURIComponent(q)}&limit=30`);
  } catch (err) {
    found = { items: [], error: err.message };
  }
  if (asked === search.asked) showHits(found);
}

export function clearSearch() {
  clearTimeout(search.timer);
  search.asked += 1;
  dom.search.value = '';
  showHits(null);
}

function showHits(found) {
  dom.searchResults.hidden = !found;
  dom.threadList.hidden = Boolean(found);
  dom.showArchived.hidden = Boolean(found);
  if (!found) { dom.searchResults.replaceChildren(); return; }
  if (!found.items.length) {
    dom.searchResults.replaceChildren(h('li', 'muted search-empty', found.error || 'No chats match.'));
    return;
  }
  dom.searchResults.replaceChildren(...found.items.map((hit) => {
    const btn = h('button', 'search-hit');
    btn.type = 'button';
    btn.dataset.id = hit.thread_id;
    btn.append(
      h('span', 'thread-title ellipsis', hit.title || 'Untitled chat'),
      h('span', 'search-excerpt', hit.message_id ? hit.excerpt : 'in the title'),
    );
    const li = h('li');
    li.append(btn);
    return li;
  }));
}
