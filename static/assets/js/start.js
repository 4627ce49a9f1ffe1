// Entry module of the start page (/): join a room by name, host login, room
// creation and the host's rooms (open, copy link, end meeting, delete),
// recent rooms, and "forget me on this device".

import * as api from './api.js';
import { confirmDialog } from './dialog.js';
import { $, announce } from './dom.js';
import { initI18n, setAria, setText } from './i18n.js';
import { fillIcons, icon } from './icons.js';
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
  if (user) {
    setText($('logged-in-as'), 'start.host.loggedInAs', { user });
    loadRooms();
  } else {
    $('rooms-list').replaceChildren();
  }
}

function sessionEnded() {
  showHost(null);
  setText($('login-error'), 'start.login.expired');
  $('login-error').hidden = false;
}

/** Copies `text`; resolves to whether it worked (no clipboard API on plain http: the old way). */
async function copyText(text, field) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const buffer = field || document.createElement('textarea');
    if (!field) {
      buffer.value = text;
      buffer.className = 'copy-buffer';
      buffer.setAttribute('aria-hidden', 'true');
      document.body.appendChild(buffer);
    }
    buffer.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    if (!field) buffer.remove();
    return ok;
  }
}

function roomAction(key, params, className, onClick, iconName) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `btn btn-small ${className || ''}`.trim();
  if (iconName) b.appendChild(icon(iconName));
  const label = document.createElement('span');
  setText(label, key);
  b.appendChild(label);
  setAria(b, `${key}Named`, params);
  b.addEventListener('click', onClick);
  return b;
}

function renderRooms(rooms) {
  const list = $('rooms-list');
  list.replaceChildren(
    ...rooms.map((r) => {
      const params = { room: r.room };
      const li = document.createElement('li');
      li.className = 'room-item';
      li.dataset.room = r.room;
      const main = document.createElement('div');
      main.className = 'room-item-main';
      const name = document.createElement('strong');
      name.className = 'room-item-name';
      name.textContent = r.room;
      const state = document.createElement('span');
      state.className = r.running ? 'badge badge-live' : 'room-item-idle';
      if (r.running) setText(state, 'start.rooms.running', { count: Number(r.participants) || 0 });
      else setText(state, 'start.rooms.idle');
      main.append(name, state);
      const actions = document.createElement('div');
      actions.className = 'row room-item-actions';
      const open = document.createElement('a');
      open.className = 'btn btn-small btn-primary';
      open.href = `/${encodeURIComponent(r.room)}`;
      setText(open, 'start.rooms.open');
      setAria(open, 'start.rooms.openNamed', params);
      const url = typeof r.url === 'string' && r.url ? r.url : `${location.origin}/${r.room}`;
      actions.append(
        open,
        roomAction('start.rooms.copy', params, '', () => copyRoomLink(r.room, url), 'copy'),
      );
      if (r.running) actions.append(roomAction('start.rooms.end', params, 'btn-danger-outline', () => endRoom(r.room)));
      actions.append(roomAction('start.rooms.delete', params, 'btn-danger-outline', () => deleteRoom(r.room)));
      li.append(main, actions);
      return li;
    }),
  );
  $('rooms-empty').hidden = rooms.length > 0;
}

let roomsRequest = 0;

/** Fetches and shows the host's rooms; `focusRoom` gets the focus back after an action, if it is still there. */
async function loadRooms(focusRoom) {
  const ticket = ++roomsRequest;
  const res = await api.listRooms();
  if (ticket !== roomsRequest) return; // a newer refresh is on its way
  const error = $('rooms-error');
  if (res.status === 401) {
    sessionEnded();
    return;
  }
  if (!res.ok || !res.data || !Array.isArray(res.data.rooms)) {
    setText(error, res.status === 0 ? 'error.network' : 'start.rooms.failed');
    error.hidden = false;
    return;
  }
  error.hidden = true;
  const rooms = res.data.rooms.filter((r) => r && typeof r.room === 'string');
  renderRooms(rooms);
  if (focusRoom !== undefined) {
    const row = [...$('rooms-list').children].find((li) => li.dataset.room === focusRoom);
    const target = row ? row.querySelector('a') : $('rooms-heading');
    if (target === $('rooms-heading')) target.setAttribute('tabindex', '-1');
    target.focus();
  }
}

function roomsStatus(key, params) {
  setText($('rooms-status'), key, params);
}

async function copyRoomLink(room, url) {
  const ok = await copyText(url);
  if (ok) roomsStatus('start.rooms.copied', { room });
  else roomsStatus('start.rooms.copyFailed', { url });
}

async function endRoom(room) {
  const yes = await confirmDialog({
    title: 'start.rooms.endConfirm.title',
    text: 'start.rooms.endConfirm.text',
    confirm: 'start.rooms.end',
    params: { room },
  });
  if (!yes) return;
  const res = await api.endRoom(room);
  if (res.status === 401) return sessionEnded();
  if (res.ok || res.status === 404 || res.status === 409) roomsStatus('start.rooms.ended', { room });
  else roomsStatus(res.status === 0 ? 'error.network' : 'start.rooms.actionFailed');
  loadRooms(room);
}

async function deleteRoom(room) {
  const yes = await confirmDialog({
    title: 'start.rooms.deleteConfirm.title',
    text: 'start.rooms.deleteConfirm.text',
    confirm: 'start.rooms.delete',
    params: { room },
  });
  if (!yes) return;
  const res = await api.deleteRoom(room);
  if (res.status === 401) return sessionEnded();
  if (res.ok || res.status === 404) {
    roomsStatus('start.rooms.deleted', { room });
    if ($('created-url').value.endsWith(`/${room}`)) $('created').hidden = true;
  } else roomsStatus(res.status === 0 ? 'error.network' : 'start.rooms.actionFailed');
  loadRooms(room);
}

let loginRetryTimer = 0;

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
    clearTimeout(loginRetryTimer);
    submit.disabled = false;
    if (res.ok) {
      $('login-password').value = '';
      showHost(res.data && res.data.user ? res.data.user : username);
      announce('start.host.loggedInAs', { user: res.data && res.data.user ? res.data.user : username });
      $('create-room').focus();
      return;
    }
    if (res.status === 429 || res.code === 'too-many-attempts') {
      // Wait as long as the server asks; the button comes back by itself.
      const seconds = Math.max(1, Math.ceil(res.retryAfter || 30));
      setText(error, seconds === 1 ? 'start.login.tooManyOne' : 'start.login.tooMany', { seconds });
      submit.disabled = true;
      loginRetryTimer = setTimeout(() => {
        submit.disabled = false;
      }, seconds * 1000);
    } else {
      setText(error, res.status === 401 ? 'start.login.wrong' : res.status === 0 ? 'error.network' : 'start.login.failed');
    }
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
      loadRooms();
      return;
    }
    if (res.status === 401) {
      sessionEnded();
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
    // Without the clipboard API (plain http) the field's text is selected, so Ctrl+C works.
    const ok = await copyText(field.value, field);
    setText($('copy-status'), ok ? 'start.create.copied' : 'start.create.copyFailed');
  });
  $('rooms-refresh').addEventListener('click', async () => {
    await loadRooms();
    if ($('rooms-error').hidden) roomsStatus('start.rooms.refreshed');
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
