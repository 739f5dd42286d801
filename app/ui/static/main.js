// The dashboard's router: the part of the URL after `#` names the page (#/flows, #/flows/NAME,
// #/runs, #/runs/ID), so every page can be bookmarked and the server serves one file. A page
// the API refuses with 401 shows the sign-in form, then the page asked for.

import {ApiError, api, csrfToken} from './api.js';
import {errorBox, h, title} from './dom.js';
import {flowPage, flowsPage} from './flows.js';
import {loginPage} from './login.js';
import {runPage} from './run.js';
import {runsPage} from './runs.js';

const ROUTES = [
  [/^\/flows\/?$/, flowsPage, 'flows'],
  [/^\/flows\/([^/]+)$/, flowPage, 'flows'],
  [/^\/runs\/?$/, runsPage, 'runs'],
  [/^\/runs\/([0-9a-fA-F-]{36})$/, runPage, 'runs'],
];

const main = document.getElementById('main');
let current = null;  // the AbortController of the page shown: leaving a page stops its work

async function showWho() {
  const who = document.getElementById('who');
  try {
    const me = await api('/me');
    // Only a session can sign out; without authentication the page acts as the local admin.
    const session = csrfToken() ? [h('button', {type: 'button', id: 'sign-out', onclick: signOut}, 'Sign out')] : [];
    who.replaceChildren(h('span', {}, `Signed in as ${me.username}`), ...session);
  } catch {
    who.replaceChildren();
  }
}

async function signOut() {
  try { await api('/auth/logout', {method: 'POST'}); } catch { /* the session was over anyway */ }
  document.cookie = 'fm_csrf=; Max-Age=0; path=/';
  route();
}

async function route() {
  if (current) current.abort();
  const controller = new AbortController();
  current = controller;
  main.setAttribute('aria-busy', 'true');
  const [path, query = ''] = (location.hash.startsWith('#/') ? location.hash.slice(1) : '/runs').split('?');
  const found = ROUTES.map(([pattern, page, nav]) => [path.match(pattern), page, nav]).find(([match]) => match);
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (found && link.dataset.nav === found[2]) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  try {
    if (!found) {
      main.replaceChildren(title('Not found'), h('p', {}, 'No such page. ', h('a', {href: '#/runs'}, 'See the runs.')));
    } else {
      const [match, page] = found;
      const context = {signal: controller.signal, params: new URLSearchParams(query)};
      await page(main, context, ...match.slice(1).map(decodeURIComponent));
    }
  } catch (error) {
    if (controller.signal.aborted) return;
    if (error instanceof ApiError && error.status === 401) {
      document.getElementById('who').replaceChildren();
      main.removeAttribute('aria-busy');
      loginPage(main, () => { showWho(); route(); });
      return;
    }
    main.replaceChildren(title(error instanceof ApiError && error.status === 404 ? 'Not found' : 'Something went wrong'),
      errorBox(error));
  }
  if (controller.signal.aborted) return;
  main.removeAttribute('aria-busy');
  document.title = `${document.getElementById('page-title')?.textContent || 'Dashboard'} · Flow Manager`;
  document.getElementById('page-title')?.focus({preventScroll: false});
}

window.addEventListener('hashchange', route);
document.getElementById('skip').addEventListener('click', (event) => {
  event.preventDefault();  // the hash names pages: move the focus without changing it
  main.focus();
});
showWho();
route();
