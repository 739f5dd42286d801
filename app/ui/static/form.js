// The start-run form, built from the flow's declared inputs: one labelled control per input,
// of the input's type, marked required where the flow says so, its default shown. An empty
// optional field is left out, so the service applies the declared default.

import {h} from './dom.js';

/** The definition's inputs as a list of {name, type, required, default?, description}. */
export function declaredInputs(definition) {
  const raw = (definition && definition.inputs) || [];
  const entries = Array.isArray(raw)
    ? raw.map((item) => [item.name, item])
    : Object.entries(raw).map(([name, body]) => [name, typeof body === 'string' ? {type: body} : body]);
  return entries.map(([name, body]) => ({
    name,
    type: (body && body.type) || 'any',
    required: Boolean(body && body.required),
    hasDefault: Boolean(body) && Object.hasOwn(body, 'default'),
    default: body ? body.default : undefined,
    description: (body && body.description) || '',
  }));
}

function control(input, id) {
  const common = {id, name: input.name, required: input.required, 'aria-describedby': `${id}-hint`};
  switch (input.type) {
    case 'integer': return h('input', {...common, type: 'number', step: '1', inputmode: 'numeric'});
    case 'number': return h('input', {...common, type: 'number', step: 'any', inputmode: 'decimal'});
    case 'boolean': return h('select', common, h('option', {value: ''}, '(not set)'),
      h('option', {value: 'true'}, 'true'), h('option', {value: 'false'}, 'false'));
    case 'string': return h('input', {...common, type: 'text', autocomplete: 'off'});
    default: return h('textarea', {...common, rows: '3', spellcheck: 'false'});
  }
}

function hint(input) {
  const parts = [input.type, input.required ? 'required' : 'optional'];
  if (input.hasDefault) parts.push(`default ${JSON.stringify(input.default)}`);
  if (!['string', 'integer', 'number', 'boolean'].includes(input.type)) parts.push('as JSON');
  return [parts.join(', '), input.description].filter(Boolean).join(' — ');
}

/** The value typed in a control, or undefined when it is empty (or not valid JSON: thrown). */
function valueOf(input, element) {
  const text = element.value;
  if (text === '' && input.type !== 'string') return undefined;
  if (text === '' && !input.required) return undefined;
  switch (input.type) {
    case 'integer': case 'number': return Number(text);
    case 'boolean': return text === 'true';
    case 'string': return text;
    default:
      try { return JSON.parse(text); } catch {
        throw new Error(`${input.name}: not valid JSON`);
      }
  }
}

/** The form; `onStart(inputs)` is awaited on submit and returns an error to show, if any. */
export function startForm(definition, onStart) {
  const inputs = declaredInputs(definition);
  const status = h('p', {class: 'form-status', role: 'status'});
  const fields = inputs.map((input) => {
    const id = `input-${input.name}`;
    return h('div', {class: 'field'},
      h('label', {for: id}, input.name),
      control(input, id),
      h('small', {id: `${id}-hint`, class: 'hint'}, hint(input)));
  });
  const form = h('form', {class: 'start-form', 'aria-label': 'Start a run', novalidate: false},
    inputs.length ? fields : h('p', {class: 'muted'}, 'This flow declares no inputs.'),
    h('button', {type: 'submit', class: 'primary'}, 'Start run'), status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const values = {};
    try {
      for (const input of inputs) {
        const value = valueOf(input, form.elements.namedItem(input.name));
        if (value !== undefined) values[input.name] = value;
      }
    } catch (error) {
      status.textContent = error.message;
      status.className = 'form-status error';
      return;
    }
    status.textContent = 'Starting…';
    status.className = 'form-status';
    const problem = await onStart(values);
    if (problem) {
      status.textContent = problem;
      status.className = 'form-status error';
    }
  });
  return form;
}
