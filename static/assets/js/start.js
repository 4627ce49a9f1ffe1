// Entry module of the start page (/): join a room by name, host login and
// room creation, recent rooms, and "forget me on this device".

import * as api from './api.js';
import { $, announce } from './dom.js';
import { initI18n, setText } from './i18n.js';
import { fillIcons } from './icons.js';
import { normalizeRoomName, roomNameError } from './roomname.js';
import * as storage from './storage.js';

function showFieldError(input, box, key, params) {
  if (key) {
    setText(box, key, params);
    box.hidden = false;
    input.setAttribute('aria-invalid', 'true');
  } else {
    box.hidden = true;
    input.removeAttribute('aria-invalid');
  }
}

function renderRecent() {
  const rooms = storage.recentRooms();
  const list = $('recent-list');
  list.replaceChildren(
    ...rooms.map((room) => {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = `/${encodeURIComponent(room)}`;
      a.textContent = room;
      li.appendChild(a);
      return li;
    }),
  );
  $('recent-section').hidden = rooms.length === 0;
}

function initJoin() {
  const input = $('join-room');
  const error = $('join-error');
  input.addEventListener('input', () => showFieldError(input, error, null));
  $('join-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const room = normalizeRoomName(input.value);
    const err = roomNameError(room);
    showFieldError(input, error, err);
    if (err) {
      input.focus();
      return;
    }
    location.assign(`/${room}`);
  });
}

function showHost(user) {
  $('login-form').hidden = !!user;
  $('host-panel').hidden = !user;
  if (user) setText($('logged-in-as'), 'start.host.loggedInAs', { user });
}

function initLogin() {
  const form = $('login-form');
  const error = $('login-error');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const username = $('login-username').value.trim();
    const password = $('login-password').value;
    error.hidden = true;
    if (!username || !password) {
      setText(error, 'start.login.missing');
      error.hidden = false;
      return;
    }
    const submit = form.querySelector('button[type="submit"]');
    submit.disabled = true;
    const res = await api.login(username, password);
    submit.disabled = false;
    if (res.ok) {
      $('login-password').value = '';
      showHost(res.data && res.data.user ? res.data.user : username);
      announce('start.host.loggedInAs', { user: res.data && res.data.user ? res.data.user : username });
      $('create-room').focus();
      return;
    }
    setText(error, res.status === 401 ? 'start.login.wrong' : res.status === 0 ? 'error.network' : 'start.login.failed');
    error.hidden = false;
  });

  $('logout').addEventListener('click', async () => {
    await api.logout();
    $('created').hidden = true;
    showHost(null);
    announce('start.host.loggedOut');
    $('login-username').focus();
  });
}

function initCreate() {
  const input = $('create-room');
  const error = $('create-error');
  input.addEventListener('input', () => showFieldError(input, error, null));
  $('create-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const room = normalizeRoomName(input.value);
    const err = roomNameError(room);
    showFieldError(input, error, err);
    if (err) {
      input.focus();
      return;
    }
    const res = await api.createRoom(room);
    if (res.ok) {
      const name = (res.data && res.data.room) || room;
      const url = (res.data && res.data.url) || `${location.origin}/${name}`;
      $('created-url').value = url;
      $('created-join').href = `/${encodeURIComponent(name)}`;
      setText($('created-title'), res.status === 201 ? 'start.create.created' : 'start.create.existing', { room: name });
      $('copy-status').textContent = '';
      $('created').hidden = false;
      storage.addRecentRoom(name);
      renderRecent();
      $('created-title').focus();
      return;
    }
    if (res.status === 401) {
      showHost(null);
      setText($('login-error'), 'start.login.expired');
      $('login-error').hidden = false;
      return;
    }
    const key =
      res.status === 409
        ? 'start.create.taken'
        : res.status === 400
          ? 'room.invalid.chars'
          : res.status === 0
            ? 'error.network'
            : 'start.create.failed';
    showFieldError(input, error, key);
  });

  $('copy-link').addEventListener('click', async () => {
    const field = $('created-url');
    let ok = false;
    try {
      await navigator.clipboard.writeText(field.value);
      ok = true;
    } catch {
      // No clipboard API (plain http) or refused: select the text so Ctrl+C works.
      field.select();
      try {
        ok = document.execCommand('copy');
      } catch {
        ok = false;
      }
    }
    setText($('copy-status'), ok ? 'start.create.copied' : 'start.create.copyFailed');
  });
}

function initForget() {
  $('forget').addEventListener('click', () => {
    storage.forgetAll();
    renderRecent();
    setText($('forget-status'), 'start.forget.done');
  });
}

async function main() {
  initI18n();
  fillIcons();
  initJoin();
  initLogin();
  initCreate();
  initForget();
  renderRecent();
  const res = await api.me();
  showHost(res.ok && res.data ? res.data.user : null);
}

main();
