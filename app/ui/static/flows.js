// The flows: the list, and one flow with its versions, a picture of its graph, a diff between
// two versions, who may see it, and the form that starts a run of it.

import {ApiError, api, enc} from './api.js';
import {diffView} from './diff.js';
import {describe, errorBox, h, scroller, title, when} from './dom.js';
import {flowVersion, graphOf} from './definitions.js';
import {startForm} from './form.js';
import {graphPicture} from './graph.js';

export async function flowsPage(main, {signal}) {
  const flows = await api('/flows', {signal});
  main.replaceChildren(
    title('Flows'),
    flows.length ? scroller('Flows', h('table', {class: 'list', id: 'flows'},
      h('caption', {class: 'visually-hidden'}, 'Flows you may see, with their latest version'),
      h('thead', {}, h('tr', {}, ['Flow', 'Latest version', 'Description', 'Owner', 'Runs']
        .map((name) => h('th', {scope: 'col'}, name)))),
      h('tbody', {}, flows.map((flow) => h('tr', {},
        h('th', {scope: 'row'}, h('a', {href: `#/flows/${enc(flow.name)}`}, flow.name)),
        h('td', {}, `v${flow.version}`, flow.public ? ' · public' : ''),
        h('td', {}, flow.description || '—'),
        h('td', {}, flow.owner || '—'),
        h('td', {}, h('a', {href: `#/runs?flow=${enc(flow.name)}`, 'aria-label': `Runs of ${flow.name}`}, 'Runs')))))))
      : h('p', {}, 'No flows yet. Register one with POST /flows (see ', h('a', {href: '/docs'}, '/docs'), ').'),
  );
}

function versionSelect(id, label, versions, selected) {
  return h('div', {class: 'field inline'},
    h('label', {for: id}, label),
    h('select', {id}, versions.map((item) => h('option', {
      value: item.version, selected: item.version === selected,
    }, `v${item.version}`))));
}

function sharesView(shares) {
  if (shares instanceof ApiError) {
    return h('p', {class: 'muted'}, shares.status === 403
      ? 'Only the owner and admins of this flow see its shares.' : `Shares unavailable: ${shares.message}`);
  }
  if (!shares.length) return h('p', {class: 'muted'}, 'Shared with nobody.');
  return h('ul', {id: 'shares'}, shares.map((share) => h('li', {}, `${share.user}: ${share.permission}`)));
}

function diffSection(name, versions, shown) {
  const output = h('div', {id: 'diff-output', 'aria-live': 'polite'});
  const older = versions.length > 1 ? versions[versions.length - 2].version : shown;
  const form = h('form', {class: 'row', 'aria-label': 'Compare two versions'},
    versionSelect('diff-from', 'From', versions, Math.min(older, shown)),
    versionSelect('diff-to', 'To', versions, shown),
    h('button', {type: 'submit'}, 'Compare'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const [from, to] = ['diff-from', 'diff-to'].map((id) => Number(form.querySelector(`#${id}`).value));
    try {
      const [a, b] = await Promise.all([flowVersion(name, from), flowVersion(name, to)]);
      output.replaceChildren(diffView(a.source, b.source, `v${from} → v${to}`));
    } catch (error) {
      output.replaceChildren(errorBox(error));
    }
  });
  return h('section', {'aria-labelledby': 'diff-title'}, h('h2', {id: 'diff-title'}, 'Compare versions'), form, output);
}

export async function flowPage(main, {signal, params}, name) {
  const [latest, versions, shares] = await Promise.all([
    api(`/flows/${enc(name)}`, {signal}),
    api(`/flows/${enc(name)}/versions`, {signal}),
    api(`/flows/${enc(name)}/shares`, {signal}).catch((error) => error),
  ]);
  const wanted = Number(params.get('version')) || latest.version;
  const detail = wanted === latest.version ? latest : await flowVersion(name, wanted);
  const graph = h('div', {id: 'flow-graph'}, h('p', {}, 'Drawing the graph…'));
  graphOf(detail).then(
    (steps) => graph.replaceChildren(scroller('Graph', graphPicture(steps, {label: `Graph of ${name} v${wanted}`}))),
    (error) => graph.replaceChildren(errorBox(error)));
  const form = startForm(detail.definition, async (inputs) => {
    try {
      const started = await api(`/flows/${enc(name)}/runs`, {method: 'POST', body: {inputs, version: wanted}});
      location.hash = `#/runs/${started.run_id}`;
      return null;
    } catch (error) {
      return `Not started: ${describe(error)}`;
    }
  });
  main.replaceChildren(
    title(name, h('span', {class: 'subtitle'}, ` v${wanted}`)),
    h('p', {}, detail.description || ''),
    h('dl', {class: 'meta'},
      h('dt', {}, 'Owner'), h('dd', {}, latest.owner || '—'),
      h('dt', {}, 'Visible to'), h('dd', {}, latest.public ? 'every user (public)' : 'its owner, admins and shares'),
      h('dt', {}, 'Registered'), h('dd', {}, when(detail.created_at), detail.created_by ? ` by ${detail.created_by}` : ''),
      h('dt', {}, 'Change notes'), h('dd', {}, detail.change_notes || '—'),
      h('dt', {}, 'Runs'), h('dd', {}, h('a', {href: `#/runs?flow=${enc(name)}`}, `Runs of ${name}`))),
    h('section', {'aria-labelledby': 'start-title'}, h('h2', {id: 'start-title'}, `Start a run of v${wanted}`), form),
    h('section', {'aria-labelledby': 'graph-title'}, h('h2', {id: 'graph-title'}, 'Graph'), graph),
    h('section', {'aria-labelledby': 'versions-title'}, h('h2', {id: 'versions-title'}, 'Versions'),
      h('ol', {id: 'versions', reversed: true}, [...versions].reverse().map((item) => h('li', {},
        item.version === wanted ? h('strong', {'aria-current': 'page'}, `v${item.version}`)
          : h('a', {href: `#/flows/${enc(name)}?version=${item.version}`}, `v${item.version}`),
        ` — ${when(item.created_at)}`, item.created_by ? ` by ${item.created_by}` : '',
        item.change_notes ? `: ${item.change_notes}` : '')))),
    diffSection(name, versions, wanted),
    h('section', {'aria-labelledby': 'shares-title'}, h('h2', {id: 'shares-title'}, 'Who may see it'), sharesView(shares)),
    h('details', {}, h('summary', {}, `Source of v${wanted}`), h('pre', {tabindex: '0'}, detail.source)),
  );
}
