// A line diff of two versions' sources: the longest common subsequence of their lines, shown
// as unchanged, removed (-) and added (+) lines. Definitions are small (MAX_BODY_BYTES); past
// LIMIT lines on either side it shows both whole rather than spend quadratic time.

import {h} from './dom.js';

const LIMIT = 3000;

export function lineDiff(before, after) {
  const a = before.split('\n');
  const b = after.split('\n');
  if (a.length > LIMIT || b.length > LIMIT) {
    return [...a.map((line) => ['-', line]), ...b.map((line) => ['+', line])];
  }
  const lengths = Array.from({length: a.length + 1}, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i -= 1) {
    for (let j = b.length - 1; j >= 0; j -= 1) {
      lengths[i][j] = a[i] === b[j] ? lengths[i + 1][j + 1] + 1
        : Math.max(lengths[i + 1][j], lengths[i][j + 1]);
    }
  }
  const lines = [];
  let [i, j] = [0, 0];
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) { lines.push([' ', a[i]]); i += 1; j += 1; }
    else if (lengths[i + 1][j] >= lengths[i][j + 1]) { lines.push(['-', a[i]]); i += 1; }
    else { lines.push(['+', b[j]]); j += 1; }
  }
  while (i < a.length) { lines.push(['-', a[i]]); i += 1; }
  while (j < b.length) { lines.push(['+', b[j]]); j += 1; }
  return lines;
}

const KIND = {'-': 'removed', '+': 'added', ' ': 'same'};

export function diffView(before, after, label) {
  const lines = lineDiff(before, after);
  const changed = lines.filter(([mark]) => mark !== ' ').length;
  return h('figure', {class: 'diff'},
    h('figcaption', {}, `${label}: ${changed ? `${changed} changed lines` : 'identical'}`),
    h('pre', {tabindex: '0'}, lines.map(([mark, line]) =>
      h('span', {class: `line ${KIND[mark]}`}, `${mark} ${line}\n`))));
}
