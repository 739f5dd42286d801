// A flow's graph as an SVG picture: steps in columns by their depth (the longest chain of
// edges before them), edges as curves, each step coloured by its status when a run is shown.
// Steps are buttons: focusable, and Enter or Space selects one, as a click does.

import {h, svg} from './dom.js';

const NODE = {width: 168, height: 60};
const GAP = {x: 56, y: 18};
const MARGIN = 12;

/** Each step's column: 0 for a step nothing leads to, else one past its deepest predecessor. */
export function depths(steps, edges) {
  const into = new Map(steps.map((step) => [step.id, []]));
  for (const edge of edges) if (into.has(edge.to) && into.has(edge.from)) into.get(edge.to).push(edge.from);
  const depth = new Map();
  const visiting = new Set();
  const of = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0;  // a cycle: the validator refuses these; never loop here
    visiting.add(id);
    const value = Math.max(-1, ...into.get(id).map(of)) + 1;
    visiting.delete(id);
    depth.set(id, value);
    return value;
  };
  for (const step of steps) of(step.id);
  return depth;
}

export function layout(steps, edges) {
  const depth = depths(steps, edges);
  const rows = new Map();
  const places = new Map();
  for (const step of steps) {
    const column = depth.get(step.id);
    const row = rows.get(column) || 0;
    rows.set(column, row + 1);
    places.set(step.id, {
      x: MARGIN + column * (NODE.width + GAP.x),
      y: MARGIN + row * (NODE.height + GAP.y),
    });
  }
  const columns = Math.max(0, ...depth.values()) + 1;
  const height = Math.max(1, ...rows.values());
  return {
    places,
    width: MARGIN * 2 + columns * NODE.width + (columns - 1) * GAP.x,
    height: MARGIN * 2 + height * NODE.height + (height - 1) * GAP.y,
  };
}

function clip(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

/**
 * The picture. `status(id)` gives a step's status (or undefined for a flow without a run);
 * `onSelect(id)`, when given, makes steps selectable.
 */
export function graphPicture({steps, edges}, {status = () => undefined, onSelect, label} = {}) {
  if (!steps.length) return h('p', {}, 'This flow has no steps.');
  const {places, width, height} = layout(steps, edges);
  const handlers = new Set(steps.filter((step) => step.handler_of).map((step) => step.id));
  const picture = svg('svg', {
    class: 'graph', viewBox: `0 0 ${width} ${height}`, width, height, role: 'group',
    'aria-label': label || 'The flow as a graph of its steps',
  });
  picture.append(svg('defs', {}, svg('marker', {
    id: 'arrow', viewBox: '0 0 10 10', refX: '10', refY: '5', markerWidth: '7', markerHeight: '7',
    orient: 'auto-start-reverse',
  }, svg('path', {d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead'}))));
  for (const edge of edges) {
    const from = places.get(edge.from);
    const to = places.get(edge.to);
    if (!from || !to) continue;
    const [x1, y1] = [from.x + NODE.width, from.y + NODE.height / 2];
    const [x2, y2] = [to.x, to.y + NODE.height / 2];
    const bend = Math.max(20, (x2 - x1) / 2);
    picture.append(svg('path', {
      d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`,
      class: handlers.has(edge.to) ? 'edge handler' : 'edge', 'marker-end': 'url(#arrow)',
    }));
  }
  for (const step of steps) {
    const {x, y} = places.get(step.id);
    const state = status(step.id);
    const name = `${step.id} (${step.task})${state ? `: ${state}` : ''}`;
    const node = svg('g', {
      class: `node${state ? ` status-${state}` : ''}`, transform: `translate(${x} ${y})`,
      'data-step': step.id, 'data-status': state,
    },
    svg('title', {}, name),
    svg('rect', {width: NODE.width, height: NODE.height, rx: 8}),
    svg('text', {x: 10, y: 19, class: 'node-id'}, clip(step.id, 21)),
    svg('text', {x: 10, y: 35, class: 'node-task'}, clip(step.task, 24)),
    state ? svg('text', {x: 10, y: 51, class: 'node-status'}, state) : null);
    if (onSelect) {
      node.setAttribute('tabindex', '0');
      node.setAttribute('role', 'button');
      node.setAttribute('aria-label', `Step ${name}: show its details`);
      node.addEventListener('click', () => onSelect(step.id));
      node.addEventListener('keydown', (event) => {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          onSelect(step.id);
        }
      });
    } else {
      node.setAttribute('role', 'img');
      node.setAttribute('aria-label', `Step ${name}`);
    }
    picture.append(node);
  }
  return picture;
}
