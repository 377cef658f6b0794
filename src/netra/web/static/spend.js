// The admins' spend page: what the users' runs cost, day by day (a bar chart stacked by
// model, tier or organisation), the users and models that cost most, and the dollar budgets
// in force for those users. It reads GET /admin/usage and GET /admin/users; Chart.js (vendored, see
// vendor/README.md) is loaded the first time the page opens, never for anyone else.

const CHART_JS = '/static/vendor/chart.umd.min.js';
const TOP = 10;
let chartLibrary = null;

function loadChartLibrary() {
  chartLibrary ??= new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = CHART_JS;
    script.onload = () => resolve(window.Chart);
    script.onerror = () => { chartLibrary = null; reject(new Error('the chart library did not load')); };
    document.head.append(script);
  });
  return chartLibrary;
}

const isoDay = (d) => d.toISOString().slice(0, 10);
const dollars = (n) => `$${n.toFixed(n < 1 ? 4 : 2)}`;

/** Every line of a report, following its cursors. */
async function allLines(api, params) {
  const lines = [];
  let cursor = null;
  do {
    const query = new URLSearchParams({ ...params, limit: '1000', ...(cursor ? { cursor } : {}) });
    const page = await api(`/admin/usage?${query}`);
    lines.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return lines;
}

/**
 * The page, drawn into ``root``: ``api`` is the chat page's authenticated fetch, ``h`` its
 * element helper. ``show()`` loads and draws; the controls redraw.
 */
export function spendPage({ api, h, root }) {
  const days = root.querySelector('#spend-days');
  const stack = root.querySelector('#spend-stack');
  const canvas = root.querySelector('#spend-chart');
  const status = root.querySelector('#spend-status');
  let chart = null;
  let drawing = 0;

  function table(id, head, rows) {
    const body = root.querySelector(`#${id} tbody`);
    root.querySelector(`#${id} thead`).replaceChildren(row('th', head));
    body.replaceChildren(...(rows.length ? rows.map((cells) => row('td', cells)) : [empty(head.length)]));
  }

  function row(cell, cells) {
    const tr = h('tr');
    tr.append(...cells.map((text) => h(cell, null, String(text))));
    return tr;
  }

  function empty(span) {
    const tr = h('tr');
    const td = h('td', 'muted', 'No runs in this span.');
    td.colSpan = span;
    tr.append(td);
    return tr;
  }

  async function draw() {
    const mine = ++drawing;
    const last = new Date();
    const first = new Date(last.getTime() - (Number(days.value) - 1) * 86_400_000);
    const span = { from: isoDay(first), to: isoDay(last) };
    status.textContent = 'Loading…';
    try {
      const [Chart, parts, users, models, accounts] = await Promise.all([
        loadChartLibrary(),
        allLines(api, { ...span, group_by: 'day', split_by: stack.value }),
        allLines(api, { ...span, group_by: 'user' }),
        allLines(api, { ...span, group_by: 'model' }),
        api('/admin/users?limit=500'),
      ]);
      const topUsers = users.sort((a, b) => b.cost_usd - a.cost_usd).slice(0, TOP);
      const ids = new Map(accounts.items.map((user) => [user.email, user.id]));
      const budgets = await Promise.all(
        topUsers.filter((line) => ids.has(line.key)).map((line) => api(`/admin/users/${encodeURIComponent(ids.get(line.key))}`)),
      );
      if (mine !== drawing) return;  // the controls changed meanwhile

      const labels = [];
      for (let d = new Date(first); isoDay(d) <= span.to; d = new Date(d.getTime() + 86_400_000)) labels.push(isoDay(d));
      const series = new Map();
      for (const part of parts) {
        if (!series.has(part.split)) series.set(part.split, new Array(labels.length).fill(0));
        series.get(part.split)[labels.indexOf(part.key)] = part.cost_usd;
      }
      const data = {
        labels,
        datasets: [...series].map(([label, values]) => ({ label: label || '(none)', data: values, stack: 'spend' })),
      };
      chart?.destroy();
      chart = new Chart(canvas, {
        type: 'bar',
        data,
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          scales: {
            x: { stacked: true },
            y: { stacked: true, beginAtZero: true, title: { display: true, text: 'US dollars' } },
          },
        },
      });
      const total = parts.reduce((sum, part) => sum + part.cost_usd, 0);
      const runs = parts.reduce((sum, part) => sum + part.runs, 0);
      status.textContent = `${dollars(total)} over ${runs} run${runs === 1 ? '' : 's'}, ${span.from} to ${span.to} (UTC)`;
      table('spend-users', ['User', 'Runs', 'Tokens', 'Cost'], topUsers.map((line) => [
        line.key, line.runs, (line.input_tokens + line.output_tokens).toLocaleString(), dollars(line.cost_usd),
      ]));
      table('spend-models', ['Model', 'Runs', 'Tokens', 'Cost'], models.sort((a, b) => b.cost_usd - a.cost_usd).slice(0, TOP).map((line) => [
        line.key, line.runs, (line.input_tokens + line.output_tokens).toLocaleString(), dollars(line.cost_usd),
      ]));
      const budget = (n) => (n ? dollars(n) : 'none');
      table('spend-budgets', ['User', 'Tier', 'Per day', 'Per month', 'Per run'], budgets.map((user) => [
        user.email, user.tier, budget(user.limits.usd_per_day), budget(user.limits.usd_per_month), budget(user.limits.run_usd_budget),
      ]));
    } catch (err) {
      if (mine === drawing) status.textContent = `Could not load the spend: ${err.message}`;
    }
  }

  days.addEventListener('change', draw);
  stack.addEventListener('change', draw);
  return { show: draw, chart: () => chart };
}
