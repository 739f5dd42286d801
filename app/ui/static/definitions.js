// A flow's versions and their graphs, fetched once per page load: a version never changes
// once registered, so (name, version) names its definition and its graph for good.

import {api, enc} from './api.js';

const versions = new Map();
const graphs = new Map();

export function flowVersion(name, version) {
  const key = `${name}@${version}`;
  if (!versions.has(key)) {
    const answer = api(`/flows/${enc(name)}/versions/${version}`);
    answer.catch(() => versions.delete(key));
    versions.set(key, answer);
  }
  return versions.get(key);
}

/** Steps and edges as POST /flows/validate reports them for the version's own source. */
export function graphOf(detail) {
  const key = `${detail.name}@${detail.version}`;
  if (!graphs.has(key)) {
    const json = detail.source.trimStart().startsWith('{');
    const answer = api('/flows/validate', {
      method: 'POST', body: detail.source, type: json ? 'application/json' : 'application/yaml',
    }).then((report) => ({steps: report.steps, edges: report.edges}));
    answer.catch(() => graphs.delete(key));
    graphs.set(key, answer);
  }
  return graphs.get(key);
}

/** The declared body of step `id` anywhere in the definition (nested steps included). */
export function declaredStep(definition, id) {
  const seen = new Set();
  const search = (value) => {
    if (!value || typeof value !== 'object' || seen.has(value)) return null;
    seen.add(value);
    if (!Array.isArray(value) && value.id === id) return value;
    for (const item of Object.values(value)) {
      const found = search(item);
      if (found) return found;
    }
    return null;
  };
  return search(definition && definition.steps);
}
