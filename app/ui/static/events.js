// Following a run live: GET /runs/{id}/events (server-sent events), read with fetch so that
// the same request tells a missing endpoint (404: poll GET /runs/{id} every second instead)
// from a stream, and so that a reconnect sends `Last-Event-ID` and loses nothing.

import {api, request, FINISHED_RUN} from './api.js';

const RECONNECT_MS = 1000;
const POLL_MS = 1000;

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, {once: true});
  });
}

/** Splits a text/event-stream into events: {id, event, data} for each blank-line-ended block. */
export function* parseEvents(buffer) {
  let start = 0;
  for (;;) {
    const end = buffer.indexOf('\n\n', start);
    if (end < 0) break;
    const block = buffer.slice(start, end);
    start = end + 2;
    const event = {id: null, event: 'message', data: []};
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue;  // a keep-alive comment
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'data') event.data.push(value);
      else if (field === 'id') event.id = value;
      else if (field === 'event') event.event = value;
    }
    if (event.data.length) yield {...event, data: event.data.join('\n')};
  }
  return buffer.slice(start);
}

async function stream(runId, lastId, {onEvent, onMode}, signal) {
  const answer = await request(`/runs/${runId}/events`, {
    headers: {Accept: 'text/event-stream', ...(lastId ? {'Last-Event-ID': lastId} : {})}, signal,
  });
  if (answer.status === 404) return {missing: true, lastId};
  if (!answer.ok || !answer.body) throw new Error(`events: HTTP ${answer.status}`);
  onMode('live');
  const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let finished = false;
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer = (buffer + value).replace(/\r\n?/g, '\n');
    const events = parseEvents(buffer);
    let next = events.next();
    while (!next.done) {
      const {id, data} = next.value;
      if (id !== null) lastId = id;
      const parsed = JSON.parse(data);
      if (parsed.type === 'run' && FINISHED_RUN.has(parsed.status)) finished = true;
      onEvent(parsed);
      next = events.next();
    }
    buffer = next.value;
  }
  return {missing: false, lastId, finished};
}

async function poll(runId, onRun, signal) {
  while (!signal.aborted) {
    const run = await api(`/runs/${runId}`, {signal});
    onRun(run);
    if (FINISHED_RUN.has(run.status)) return;
    await pause(POLL_MS, signal);
  }
}

/**
 * Follows the run until it finishes or `signal` aborts: `onEvent(event)` for each event of the
 * stream, or `onRun(run)` with the whole run each second where there is no stream.
 * `onMode('live'|'polling'|'reconnecting')` says which, for the page to show.
 */
export async function follow(runId, {onEvent, onRun, onMode, signal}) {
  let lastId = null;
  while (!signal.aborted) {
    try {
      const result = await stream(runId, lastId, {onEvent, onMode}, signal);
      if (result.missing) {
        onMode('polling');
        await poll(runId, onRun, signal);
        return;
      }
      lastId = result.lastId;
      if (result.finished) return;
    } catch (error) {
      if (signal.aborted) return;
      if (error && error.status === 404) throw error;  // the run itself is gone
    }
    onMode('reconnecting');
    await pause(RECONNECT_MS, signal);
  }
}
