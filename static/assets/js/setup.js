// Entry module of the setup page (/setup#token=…): creates the first host
// account with the one-time link the server printed at its first start.

import * as api from './api.js';
import { $, showScreen } from './dom.js';
import { initI18n, setText } from './i18n.js';
import { fillIcons } from './icons.js';

const USERNAME = /^[a-z0-9._-]{1,32}$/;
const MIN_PASSWORD = 10;

/** Reads the token, then removes it from the address bar (and so from history and screenshots). */
function readToken() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (location.hash) history.replaceState(history.state, '', location.pathname);
  return token;
}

function fail(key) {
  const box = $('setup-error');
  setText(box, key);
  box.hidden = false;
}

async function main() {
  initI18n();
  fillIcons();
  const token = readToken();
  if (!token) {
    showScreen('no-token');
    return;
  }
  showScreen('form');
  const form = $('setup-form');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('setup-error').hidden = true;
    const username = $('setup-username').value.trim();
    const password = $('setup-password').value;
    const repeat = $('setup-repeat').value;
    if (!USERNAME.test(username)) return fail('setup.error.username');
    if (password.length < MIN_PASSWORD) return fail('setup.error.short');
    if (password !== repeat) return fail('setup.error.mismatch');
    const submit = form.querySelector('button[type="submit"]');
    submit.disabled = true;
    const res = await api.setup(token, username, password);
    submit.disabled = false;
    if (res.ok) {
      setText($('setup-done-text'), 'setup.done.text', { user: (res.data && res.data.user) || username });
      form.reset();
      showScreen('done');
      return;
    }
    if (res.status === 403) return fail('setup.error.link');
    if (res.status === 400) return fail('setup.error.invalid');
    return fail(res.status === 0 ? 'error.network' : 'setup.error.failed');
  });
}

main();
