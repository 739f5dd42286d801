// Sign-in, shown when the API answers 401: POST /auth/login sets the session cookie (which
// the page's scripts cannot read) and the CSRF cookie (which they send back as a header).

import {ApiError, api} from './api.js';
import {h, title} from './dom.js';

export function loginPage(main, onSignedIn) {
  const status = h('p', {class: 'form-status', role: 'alert'});
  const form = h('form', {class: 'login', 'aria-labelledby': 'page-title'},
    h('div', {class: 'field'}, h('label', {for: 'username'}, 'User name'),
      h('input', {id: 'username', name: 'username', autocomplete: 'username', required: true})),
    h('div', {class: 'field'}, h('label', {for: 'password'}, 'Password'),
      h('input', {id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true})),
    h('button', {type: 'submit', class: 'primary'}, 'Sign in'), status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    status.textContent = '';
    try {
      await api('/auth/login', {method: 'POST', body: {
        username: form.elements.username.value, password: form.elements.password.value,
      }});
      onSignedIn();
    } catch (error) {
      status.textContent = error instanceof ApiError && error.status === 401
        ? 'Wrong user name or password.'
        : error instanceof ApiError && error.status === 429 ? 'Too many attempts; wait a moment.' : `Sign-in failed: ${error.message}`;
      form.elements.password.select();
    }
  });
  main.replaceChildren(title('Sign in'), h('p', {}, 'Authentication is on: sign in with your user name and password.'), form);
  document.getElementById('username').focus();
}
