// The run's timeline (a Gantt chart): one row per step (per element of a fanned-out step),
// a bar from its start to its end — to now while it runs — and, where the live events showed
// them, one segment per attempt. Positions are percentages, so it fits any screen width.

import {duration, h} from './dom.js';

export function stepKey(step) {
  return `${step.step_id}#${step.task_index || 0}`;
}

export function stepLabel(step) {
  return step.task_index ? `${step.step_id}[${step.task_index}]` : step.step_id;
}

function time(value) {
  return value ? new Date(value).getTime() : null;
}

/** `attempts`: stepKey → [{attempt, start, end, status}] seen on the events stream. */
export function timeline(run, attempts, onSelect) {
  const now = Date.now();
  const started = run.steps.map((step) => time(step.started_at)).filter((t) => t !== null);
  if (!started.length) return h('p', {class: 'muted'}, 'No step has started yet.');
  const origin = Math.min(time(run.started_at) || Infinity, ...started);
  const ends = run.steps.map((step) => time(step.finished_at) || (step.started_at ? now : origin));
  const end = Math.max(time(run.finished_at) || 0, ...ends, origin + 1);
  const span = end - origin;
  const at = (t) => `${(((t - origin) / span) * 100).toFixed(3)}%`;
  const width = (from, to) => `${Math.max(0.4, ((to - from) / span) * 100).toFixed(3)}%`;
  const rows = run.steps.map((step) => {
    const from = time(step.started_at);
    const to = time(step.finished_at) || now;
    const seen = attempts.get(stepKey(step)) || [];
    const segments = seen.length > 1
      ? seen.map((part) => h('span', {
        class: `bar status-${part.status}`,
        style: {left: at(time(part.start)), width: width(time(part.start), time(part.end) || now)},
        title: `attempt ${part.attempt}: ${part.status}`,
      }))
      : from === null ? [] : [h('span', {
        class: `bar status-${step.status}`, style: {left: at(from), width: width(from, to)},
      })];
    const summary = `${step.status}, ${step.attempts} attempt${step.attempts === 1 ? '' : 's'}, `
      + `${duration(step.duration_ms ?? (from === null ? null : to - from))}`;
    return h('li', {class: 'timeline-row'},
      h('button', {type: 'button', class: 'linkish', 'data-step': step.step_id,
        onclick: () => onSelect(step.step_id, step.task_index || 0)},
        stepLabel(step)),
      h('span', {class: 'track', role: 'img', 'aria-label': `${stepLabel(step)}: ${summary}`}, segments),
      h('span', {class: 'timeline-note'}, summary));
  });
  return h('figure', {class: 'timeline'},
    h('figcaption', {}, `Timeline: ${duration(span)} from the first start`),
    h('ol', {}, rows));
}
