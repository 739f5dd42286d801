// One run: its graph coloured by status, its timeline, its steps and one step's details,
// followed live (events.js) until it finishes; buttons to cancel and retry it.

import {FINISHED_RUN, FINISHED_STEP, RETRYABLE_RUN, api, enc} from './api.js';
import {declaredStep, flowVersion, graphOf} from './definitions.js';
import {announce, badge, describe, duration, errorBox, h, scroller, title, when} from './dom.js';
import {follow} from './events.js';
import {graphPicture} from './graph.js';
import {stepDetail, valueView} from './step.js';
import {stepKey, stepLabel, timeline} from './timeline.js';

const MODE_TEXT = {
  live: 'Live: following the run\'s events.',
  polling: 'Live: checking the run every second.',
  reconnecting: 'Connection lost; reconnecting…',
  done: 'The run has finished.',
};

/** One status for a step however many elements it fanned out to. */
export function stepStatus(steps, id) {
  const statuses = new Set(steps.filter((step) => step.step_id === id).map((step) => step.status));
  for (const status of ['failed', 'running', 'waiting', 'queued', 'pending', 'cancelled', 'completed', 'skipped']) {
    if (statuses.has(status)) return status;
  }
  return undefined;
}

function fallbackGraph(run) {
  const ids = [...new Set(run.steps.map((step) => step.step_id))];
  return {steps: ids.map((id) => ({id, task: '', depends_on: [], handler_of: null})), edges: []};
}

/** Applies one event of the stream to the run as the page holds it; true when the run's
 * own status changed. */
export function applyEvent(run, attempts, event) {
  if (event.type === 'run') {
    const changed = run.status !== event.status;
    run.status = event.status;
    if ('outputs' in event) run.outputs = event.outputs;
    if ('error' in event) run.error = event.error;
    if (event.status === 'running' && !run.started_at) run.started_at = event.at;
    if (FINISHED_RUN.has(event.status)) run.finished_at = event.at;
    return changed;
  }
  const index = event.task_index || 0;
  let step = run.steps.find((item) => item.step_id === event.step_id && (item.task_index || 0) === index);
  if (!step) {
    step = {step_id: event.step_id, task_index: index, status: 'pending', attempts: 0, outputs: null,
      error: null, started_at: null, finished_at: null, duration_ms: null};
    run.steps.push(step);
  }
  step.status = event.status;
  if (event.attempt) step.attempts = Math.max(step.attempts, event.attempt);
  if ('outputs' in event) step.outputs = event.outputs;
  if ('error' in event) step.error = event.error;
  const parts = attempts.get(stepKey(step)) || [];
  const open = parts.length && !parts[parts.length - 1].end ? parts[parts.length - 1] : null;
  if (event.status === 'running') {
    if (!step.started_at) step.started_at = event.at;
    step.finished_at = null;
    step.duration_ms = null;
    if (!open) parts.push({attempt: event.attempt || parts.length + 1, start: event.at, end: null, status: 'running'});
  } else if (open) {
    open.end = event.at;
    open.status = FINISHED_STEP.has(event.status) ? event.status : 'failed';  // queued again: a retry
  }
  attempts.set(stepKey(step), parts);
  if (FINISHED_STEP.has(event.status)) {
    step.finished_at = event.at;
    if (step.started_at) step.duration_ms = new Date(event.at) - new Date(step.started_at);
  }
  return false;
}

export async function runPage(main, {signal, params}, runId) {
  let run = await api(`/runs/${runId}`, {signal});
  const detail = await flowVersion(run.flow, run.version).catch(() => null);
  const graph = detail ? await graphOf(detail).catch(() => fallbackGraph(run)) : fallbackGraph(run);
  const attempts = new Map();
  let selected = params.get('step') ? {id: params.get('step'), index: Number(params.get('i') || 0)} : null;
  let following = false;
  let mode = FINISHED_RUN.has(run.status) ? 'done' : 'live';
  let scheduled = false;

  const statusBox = h('span', {id: 'run-status-box'});
  const actions = h('div', {class: 'row actions'});
  const modeLine = h('p', {id: 'live-mode', class: 'muted'});
  const problem = h('div', {id: 'run-error'});
  const notice = h('div', {id: 'action-error'});  // why a button's request was refused
  const times = h('dl', {class: 'meta'});
  const graphBox = h('div', {id: 'run-graph'});
  const timelineBox = h('div', {id: 'run-timeline'});
  const stepsBox = h('div', {id: 'run-steps'});
  const detailBox = h('section', {id: 'step-detail', 'aria-labelledby': 'step-title', tabindex: '-1'});
  const valuesBox = h('div', {id: 'run-values'});

  const select = (id, index = 0) => {
    selected = {id, index};
    const url = `#/runs/${runId}?step=${enc(id)}${index ? `&i=${index}` : ''}`;
    history.replaceState(null, '', url);  // no hashchange: the page stays, the URL can be shared
    renderDetail();
    detailBox.focus();
  };

  const act = async (verb) => {
    try {
      run = await api(`/runs/${runId}/${verb}`, {method: 'POST'});
      notice.replaceChildren();
      announce(`Run ${run.status}`);
      render();
      if (!FINISHED_RUN.has(run.status)) startFollowing();
    } catch (error) {
      notice.replaceChildren(errorBox(error));
    }
  };

  let shownDetail = null;
  function renderDetail(force = true) {
    const step = selected && (run.steps.find((item) => item.step_id === selected.id && (item.task_index || 0) === selected.index)
      || run.steps.find((item) => item.step_id === selected.id));
    // Rebuilt (and its logs fetched again) only when the step changed, not on every event.
    const key = JSON.stringify([selected, step && [step.status, step.attempts, step.outputs, step.error]]);
    if (!force && key === shownDetail) return;
    shownDetail = key;
    if (!selected) {
      detailBox.replaceChildren(h('h2', {id: 'step-title'}, 'Step'), h('p', {class: 'muted'},
        'Choose a step in the graph, the timeline or the table to see its inputs, outputs, error and logs.'));
      return;
    }
    detailBox.replaceChildren(...stepDetail(run, step, selected.id,
      detail ? declaredStep(detail.definition, selected.id) : null));
  }

  function render() {
    scheduled = false;
    // Rebuilding a part must not lose the keyboard user's place: the focused step's control
    // (graph node, timeline or table button) takes the focus again afterwards.
    const active = document.activeElement;
    const focusKey = active && active.dataset && active.dataset.step !== undefined
      ? [active.closest('[id]')?.id, active.tagName, active.dataset.step] : null;
    statusBox.replaceChildren(badge(run.status, {id: 'run-status'}));
    actions.replaceChildren(...[
      !FINISHED_RUN.has(run.status) ? h('button', {type: 'button', id: 'cancel', onclick: () => act('cancel')}, 'Cancel run') : null,
      RETRYABLE_RUN.has(run.status) ? h('button', {type: 'button', id: 'retry', class: 'primary', onclick: () => act('retry')}, 'Retry run') : null,
      h('a', {href: `#/runs?flow=${enc(run.flow)}`, class: 'button'}, `Runs of ${run.flow}`),
    ].filter(Boolean));
    modeLine.textContent = MODE_TEXT[mode];
    problem.replaceChildren(run.error ? h('p', {class: 'error'}, `${run.error.step ? `Step ${run.error.step}: ` : ''}`
      + `${run.error.type}: ${run.error.message}`) : '');
    const took = run.started_at ? (run.finished_at ? new Date(run.finished_at) : new Date()) - new Date(run.started_at) : null;
    times.replaceChildren(
      h('dt', {}, 'Flow'), h('dd', {}, h('a', {href: `#/flows/${enc(run.flow)}?version=${run.version}`}, `${run.flow} v${run.version}`)),
      h('dt', {}, 'Started by'), h('dd', {}, run.created_by || '—'),
      h('dt', {}, 'Created'), h('dd', {}, when(run.created_at)),
      h('dt', {}, 'Finished'), h('dd', {}, when(run.finished_at)),
      h('dt', {}, 'Took'), h('dd', {}, duration(took)));
    graphBox.replaceChildren(scroller('Graph', graphPicture(graph, {
      status: (id) => stepStatus(run.steps, id), onSelect: (id) => select(id), label: 'The run\'s steps coloured by status',
    })));
    timelineBox.replaceChildren(timeline(run, attempts, select));
    stepsBox.replaceChildren(scroller('Steps', h('table', {class: 'list'},
      h('caption', {class: 'visually-hidden'}, 'Every step of the run'),
      h('thead', {}, h('tr', {}, ['Step', 'Status', 'Attempts', 'Took', ''].map((name) => h('th', {scope: 'col'}, name)))),
      h('tbody', {}, run.steps.map((step) => h('tr', {},
        h('th', {scope: 'row'}, stepLabel(step)), h('td', {}, badge(step.status)), h('td', {}, String(step.attempts)),
        h('td', {}, duration(step.duration_ms)),
        h('td', {}, h('button', {type: 'button', class: 'linkish', 'data-step': step.step_id,
          onclick: () => select(step.step_id, step.task_index || 0)}, `Details of ${stepLabel(step)}`))))))));
    valuesBox.replaceChildren(
      h('h3', {}, 'Inputs'), valueView(run.inputs, 'run-inputs'),
      h('h3', {}, 'Outputs'), valueView(run.outputs, 'run-outputs'));
    renderDetail(false);
    if (focusKey) {
      const again = document.getElementById(focusKey[0])
        ?.querySelector(`${focusKey[1]}[data-step="${CSS.escape(focusKey[2])}"]`);
      if (again) again.focus();
    }
  }

  const later = () => {
    if (!scheduled) { scheduled = true; requestAnimationFrame(render); }
  };

  async function startFollowing() {
    if (following) return;
    following = true;
    mode = 'live';
    try {
      await follow(runId, {
        signal,
        onMode: (value) => { mode = value; later(); },
        onEvent: (event) => {
          if (applyEvent(run, attempts, event)) announce(`Run ${run.status}`);
          later();
        },
        onRun: (fresh) => {
          if (fresh.status !== run.status) announce(`Run ${fresh.status}`);
          run = fresh;
          later();
        },
      });
      if (!signal.aborted) run = await api(`/runs/${runId}`, {signal});  // the final, whole state
    } catch (error) {
      if (!signal.aborted) notice.replaceChildren(h('p', {class: 'error', role: 'alert'}, describe(error)));
    } finally {
      following = false;
    }
    if (!signal.aborted) {
      mode = 'done';
      render();
    }
  }

  main.replaceChildren(
    title(`Run ${run.run_id.slice(0, 8)}`, ' ', statusBox),
    h('p', {class: 'mono small'}, run.run_id),
    actions, notice, modeLine, problem, times,
    h('section', {'aria-labelledby': 'graph-title'}, h('h2', {id: 'graph-title'}, 'Graph'), graphBox),
    h('section', {'aria-labelledby': 'timeline-title'}, h('h2', {id: 'timeline-title'}, 'Timeline'), timelineBox),
    h('div', {class: 'columns'},
      h('section', {'aria-labelledby': 'steps-title'}, h('h2', {id: 'steps-title'}, 'Steps'), stepsBox),
      detailBox),
    h('section', {'aria-labelledby': 'values-title'}, h('h2', {id: 'values-title'}, 'Inputs and outputs'), valuesBox),
  );
  render();
  if (!FINISHED_RUN.has(run.status)) startFollowing();
}
