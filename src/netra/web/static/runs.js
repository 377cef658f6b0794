// Runs: folding a run's events into steps, answer text and outcome.
//
// A run is { id, events (sorted by seq), baseStatus (from GET /runs/{id} or an ack), loaded
// (its stored events came over HTTP), parentId (a sub-agent's run: the run that delegated to
// it, whose step shows it; it has no block of its own), and the folded fields: status,
// steps, text, outcome, error, started (its agent_started is among the events) }.

export const FINAL = new Set(['completed', 'failed', 'cancelled', 'timed_out', 'interrupted']);

export function ensureRun(view, runId) {
  let run = view.runs.get(runId);
  if (!run) {
    run = { id: runId, events: [], baseStatus: null, cancelRequested: false };
    foldRun(run);
    view.runs.set(runId, run);
  }
  return run;
}

/** Add one event; apply it incrementally when it is the newest, else re-fold from scratch. */
export function addRunEvent(run, ev) {
  const last = run.events.at(-1);
  if (!last || ev.seq > last.seq) {
    run.events.push(ev);
    applyRunEvent(run, ev);
    return;
  }
  if (run.events.some((e) => e.seq === ev.seq)) return;  // already have it
  run.events.push(ev);
  run.events.sort((a, b) => a.seq - b.seq);
  foldRun(run);
}

export function foldRun(run) {
  Object.assign(run, {
    status: run.baseStatus, steps: [], text: '', outcome: null, error: null, started: false,
  });
  for (const ev of run.events) applyRunEvent(run, ev);
}

function applyRunEvent(run, ev) {
  const d = ev.data ?? {};
  if (!FINAL.has(run.status)) run.status = 'running';  // any run event means it has started
  switch (ev.type) {
    case 'run_queued': run.status = 'queued'; break;
    case 'agent_started':
      run.started = true;
      run.parentId = d.parent_run_id ?? null;
      break;
    case 'agent_thinking':
      // A run continuing after a pause or on another server: text past text_chars is streamed again.
      if (d.resumed) run.text = run.text.slice(0, d.resumed.text_chars ?? run.text.length);
      run.steps.push({
        kind: 'thinking', text: d.text ?? '', dropped: d.context?.dropped ?? 0, summarized: d.context?.summarized ?? 0,
      });
      break;
    case 'approval_required':
      run.status = 'requires_approval';
      run.steps.push({ kind: 'approval', id: d.tool_call_id, runId: ev.run_id, tool: d.tool, args: d.arguments, sideEffects: d.side_effects });
      break;
    case 'tool_executing': {
      const asked = run.steps.find((s) => s.kind === 'approval' && s.id === d.tool_call_id);
      if (asked) asked.answered = true;
      run.steps.push({ kind: 'tool', id: d.tool_call_id, tool: d.tool, args: d.arguments, status: 'running' });
      break;
    }
    case 'tool_completed': {
      let step = run.steps.find((s) => s.kind === 'tool' && s.id === d.tool_call_id);
      if (!step) run.steps.push((step = { kind: 'tool', id: d.tool_call_id, tool: d.tool }));
      Object.assign(step, { status: d.status === 'ok' ? 'ok' : 'error', result: d.result, error: d.error, ms: d.duration_ms });
      break;
    }
    case 'message_delta': run.text += d.delta ?? ''; break;
    case 'agent_completed':
      run.answerId = d.message_id ?? null;
      run.outcome = d.outcome;
      run.status = d.outcome;
      run.error = d.error ?? null;
      break;
    default: break;
  }
}

/** Status shown for a run: its own events win, but HTTP may already know it is final. */
export function runStatus(run) {
  if (run.outcome) return run.outcome;
  if (FINAL.has(run.baseStatus)) return run.baseStatus;
  return run.status;
}

export const isActive = (run) => runStatus(run) != null && !FINAL.has(runStatus(run));

export function activeRun(view) {
  return [...view.runs.values()].reverse().find((run) => !run.parentId && isActive(run)) ?? null;
}
