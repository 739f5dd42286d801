// The runs: filtered by flow and status, newest first, one page at a time. Paging is the
// API's cursor (`next_cursor`), so a page costs the same with 100,000 runs as with ten.

import {api, enc} from './api.js';
import {badge, duration, h, scroller, title, when} from './dom.js';

const STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled'];
const PAGE = 50;  // the API's default; `limit` in the URL asks for another size

function query(values) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(values)) if (value) params.set(name, value);
  const text = params.toString();
  return `#/runs${text ? `?${text}` : ''}`;
}

function filters(flow, status, limit, flowNames) {
  const form = h('form', {class: 'row filters', role: 'search', 'aria-label': 'Filter the runs'},
    h('div', {class: 'field inline'}, h('label', {for: 'filter-flow'}, 'Flow'),
      h('input', {id: 'filter-flow', name: 'flow', list: 'flow-names', value: flow, autocomplete: 'off',
        pattern: '[A-Za-z][A-Za-z0-9_.\\-]*', placeholder: 'any'}),
      h('datalist', {id: 'flow-names'}, flowNames.map((name) => h('option', {value: name})))),
    h('div', {class: 'field inline'}, h('label', {for: 'filter-status'}, 'Status'),
      h('select', {id: 'filter-status', name: 'status'}, h('option', {value: ''}, 'any'),
        STATUSES.map((item) => h('option', {value: item, selected: item === status}, item)))),
    h('button', {type: 'submit'}, 'Show'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = query({flow: form.elements.flow.value.trim(), status: form.elements.status.value, limit});
  });
  return form;
}

function row(run) {
  const took = run.started_at && run.finished_at
    ? new Date(run.finished_at) - new Date(run.started_at) : null;
  return h('tr', {'data-run': run.run_id},
    h('th', {scope: 'row'}, h('a', {href: `#/runs/${run.run_id}`, class: 'mono',
      'aria-label': `Run ${run.run_id}`}, run.run_id.slice(0, 8))),
    h('td', {}, h('a', {href: `#/flows/${enc(run.flow)}?version=${run.version}`}, run.flow), ` v${run.version}`),
    h('td', {}, badge(run.status)),
    h('td', {}, when(run.created_at)),
    h('td', {}, duration(took)),
    h('td', {}, run.created_by || '—'));
}

export async function runsPage(main, {signal, params}) {
  const flow = params.get('flow') || '';
  const status = params.get('status') || '';
  const cursor = params.get('cursor') || '';
  const limit = params.get('limit') || '';
  const search = new URLSearchParams({limit: limit || String(PAGE)});
  if (flow) search.set('flow', flow);
  if (status) search.set('status', status);
  if (cursor) search.set('cursor', cursor);
  const [page, flows] = await Promise.all([
    api(`/runs?${search}`, {signal}),
    api('/flows', {signal}).catch(() => []),
  ]);
  const paging = h('nav', {class: 'row paging', 'aria-label': 'Pages of runs'},
    cursor ? h('a', {href: query({flow, status, limit}), class: 'button'}, 'Newest runs') : null,
    page.next_cursor ? h('a', {href: query({flow, status, limit, cursor: page.next_cursor}), class: 'button',
      id: 'older-runs'}, 'Older runs') : null,
    h('button', {type: 'button', onclick: () => window.dispatchEvent(new HashChangeEvent('hashchange'))}, 'Refresh'));
  main.replaceChildren(
    title('Runs', flow ? h('span', {class: 'subtitle'}, ` of ${flow}`) : null),
    filters(flow, status, limit, flows.map((item) => item.name)),
    page.items.length ? scroller('Runs', h('table', {class: 'list', id: 'runs', 'data-query': search.toString()},
      h('caption', {class: 'visually-hidden'}, 'Runs, newest first'),
      h('thead', {}, h('tr', {}, ['Run', 'Flow', 'Status', 'Created', 'Took', 'By']
        .map((name) => h('th', {scope: 'col'}, name)))),
      h('tbody', {}, page.items.map(row))))
      : h('p', {id: 'no-runs'}, cursor ? 'No older runs.' : 'No runs match.'),
    paging);
}
