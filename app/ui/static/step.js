// One step's details: its status and attempts, its parameters as declared in the flow, its
// outputs (fetched whole on demand when the answer only carried a marker), its error and the
// log lines its attempts wrote (GET /runs/{id}/steps/{step_id}/logs; "no logs" on 404).

import {request, enc} from './api.js';
import {badge, duration, h, pretty, when} from './dom.js';
import {stepLabel} from './timeline.js';

/** The addresses of the markers `{truncated, bytes, href}` that stand, anywhere in a value,
 * for parts too large for the answer; each `href` answers its value whole. */
function markers(value, found = new Set()) {
  if (value && typeof value === 'object') {
    if (value.truncated === true && typeof value.href === 'string') found.add(value.href);
    else for (const item of Object.values(value)) markers(item, found);
  }
  return found;
}

/** A value of a run or a step, with a button that fetches it whole where parts were cut. */
export function valueView(value, id) {
  const shown = h('pre', {tabindex: '0'}, value == null ? '—' : pretty(value));
  const hrefs = [...markers(value)];
  if (!hrefs.length) {
    shown.id = id;
    return shown;
  }
  const load = async (href) => {
    const answer = await request(href);
    shown.textContent = answer.ok ? pretty(await answer.json()) : `Unavailable: HTTP ${answer.status}`;
  };
  return h('div', {id},
    h('p', {}, 'Parts of this value are too large for the answer. ', hrefs.map((href) =>
      h('button', {type: 'button', onclick: () => load(href), 'aria-label': `Show it whole (${href})`},
        'Show it whole'))),
    shown);
}

async function logsInto(box, runId, stepId) {
  box.replaceChildren(h('p', {class: 'muted'}, 'Loading the logs…'));
  try {
    const answer = await request(`/runs/${runId}/steps/${enc(stepId)}/logs`, {headers: {Accept: 'application/json, text/plain'}});
    if (answer.status === 404) {
      box.replaceChildren(h('p', {class: 'muted', id: 'no-logs'}, 'no logs'));
      return;
    }
    const text = await answer.text();
    let shown = text;
    if ((answer.headers.get('content-type') || '').includes('json')) {
      try { shown = pretty(JSON.parse(text)); } catch { /* shown as it came */ }
    }
    box.replaceChildren(answer.ok ? h('pre', {tabindex: '0', id: 'step-logs'}, shown || 'no logs')
      : h('p', {class: 'error'}, `Logs unavailable: HTTP ${answer.status}`));
  } catch (error) {
    box.replaceChildren(h('p', {class: 'error'}, `Logs unavailable: ${error.message}`));
  }
}

export function stepDetail(run, step, stepId, declared) {
  const logs = h('div', {class: 'logs'});
  logsInto(logs, run.run_id, stepId);
  const heading = h('h2', {id: 'step-title'}, `Step ${step ? stepLabel(step) : stepId}`);
  if (!step) return [heading, h('p', {}, 'This step has no record in the run yet.')];
  return [
    heading,
    h('p', {}, badge(step.status, {id: 'step-status'}), ` · ${step.attempts} attempt${step.attempts === 1 ? '' : 's'}`,
      ` · started ${when(step.started_at)} · took ${duration(step.duration_ms)}`),
    h('h3', {}, 'Inputs (its parameters as declared)'),
    h('pre', {tabindex: '0', id: 'step-inputs'}, declared ? pretty(declared) : '—'),
    h('h3', {}, 'Outputs'), valueView(step.outputs, 'step-outputs'),
    h('h3', {}, 'Error'),
    step.error ? h('pre', {class: 'error', id: 'step-error'}, `${step.error.type}: ${step.error.message}`) : h('p', {}, 'None.'),
    h('h3', {}, 'Logs'), logs,
  ];
}
