// Entry module of the room page (/{room}): checks that the browser can carry
// a meeting at all and that the room exists, shows the pre-join screen (or joins at once from fragment parameters),
// runs the meeting and shows the screens after it: left, password, errors.

import * as api from './api.js';
import { $, showScreen } from './dom.js';
import { initI18n, onLangChange, setText, t } from './i18n.js';
import { fillIcons } from './icons.js';
import { LocalMedia } from './media.js';
import { Meeting } from './meeting.js';
import { Prejoin } from './prejoin.js';
import { displayNameError, roomNameError } from './roomname.js';
import * as storage from './storage.js';
import { searchWithoutToken, tokenFromLocation, tokenName } from './token.js';

// What the main button of the error screen does per error (null: only "Home").
const ERROR_ACTIONS = {
  'invalid-room': null,
  unreachable: 'reload',
  'unsupported-version': 'reload',
  'conference-full': 'rejoin',
  'server-shutting-down': 'rejoin',
  internal: 'rejoin',
  'connection-lost': 'rejoin',
  'reconnect-failed': 'rejoin',
  'media-failed': 'rejoin',
  'room-locked': 'rejoin',
  barred: null,
  denied: 'knock',
  removed: null,
  'conference-ended': null,
  'conference-ended-self': null,
  'token-malformed': null,
  'token-bad-signature': null,
  'token-expired': null,
  'token-not-yet-valid': 'rejoin',
  'token-wrong-audience': null,
  'token-wrong-issuer': null,
  'token-wrong-room': null,
  'tokens-disabled': null,
};
const PASSWORD_CODES = new Set(['password-required', 'password-wrong', 'too-many-attempts']);

/** The room name from the path: as in the URL, case folded (the protocol folds it too). */
function roomFromPath() {
  let raw = location.pathname.replace(/^\/+/, '');
  try {
    raw = decodeURIComponent(raw);
  } catch {
    // Left as is; it fails validation.
  }
  return raw.toLowerCase();
}

/**
 * Reads `#name=…&autojoin=1&camera=on|off&mic=on|off&jwt=…` (and `?jwt=…`),
 * then takes those parameters out of the address bar at once, so a copied
 * link (or a screenshot, or the history) does not carry someone's name,
 * automatic join or signed token along. Fragments never reach the server.
 */
function readLinkParameters(canonicalPath) {
  const jwt = tokenFromLocation();
  const params = new URLSearchParams(location.hash.slice(1));
  const frag = {
    name: params.get('name'),
    autojoin: params.get('autojoin') === '1' || params.get('autojoin') === 'true',
    camera: params.get('camera'),
    mic: params.get('mic'),
    jwt,
  };
  ['name', 'autojoin', 'camera', 'mic', 'jwt'].forEach((k) => params.delete(k));
  const rest = params.toString();
  history.replaceState(history.state, '', canonicalPath + searchWithoutToken() + (rest ? `#${rest}` : ''));
  return frag;
}

const room = roomFromPath();
let media = null;
let prejoin = null;
let jwt = null; // the signed link's token: kept in memory only, for rejoins from this page
let lastJoin = null; // {name, want, password} of the last join, for "rejoin"
let retryTimer = 0;

/** The name in the signed link, if it is one the protocol accepts (the server will use it). */
function usableTokenName() {
  const name = tokenName(jwt);
  return name && !displayNameError(name) ? name : null;
}

function setRoomTitle() {
  document.title = roomNameError(room) ? t('room.pageTitle') : t('room.pageTitleNamed', { room });
}

function showError(code, { byMe } = {}) {
  const shown = code === 'conference-ended' && byMe ? 'conference-ended-self' : code;
  const known = shown in ERROR_ACTIONS || shown === 'invalid-name';
  const key = known ? shown : 'internal';
  setText($('error-title'), `error.${key}.title`);
  setText($('error-text'), `error.${key}.text`);
  const action = key === 'invalid-name' ? 'rename' : ERROR_ACTIONS[key];
  const retry = $('error-retry');
  retry.hidden = !action;
  if (action) {
    setText(retry, `error.action.${action}`);
    retry.dataset.action = action;
  }
  $('screen-error').dataset.code = key;
  showScreen('error');
}

/** The password form, after `password-required`, `password-wrong` or `too-many-attempts`. */
function showPassword(code, retryAfter) {
  const input = $('password-input');
  const error = $('password-error');
  const submit = $('password-submit');
  clearTimeout(retryTimer);
  input.value = '';
  submit.disabled = false;
  error.hidden = code === 'password-required';
  if (code === 'password-required') input.removeAttribute('aria-invalid');
  else input.setAttribute('aria-invalid', 'true');
  if (code === 'password-wrong') setText(error, 'password.wrong');
  if (code === 'too-many-attempts') {
    const seconds = Math.max(1, Math.ceil(Number(retryAfter) || 30));
    setText(error, seconds === 1 ? 'password.tooManyOne' : 'password.tooMany', { seconds });
    submit.disabled = true;
    retryTimer = setTimeout(() => {
      submit.disabled = false;
    }, seconds * 1000);
  }
  if (lastJoin) lastJoin.password = null;
  showScreen('password');
}

async function runPrejoin({ name, want, notice }) {
  showScreen('prejoin');
  const fromToken = usableTokenName();
  const { name: chosen } = await prejoin.show({ name: fromToken || name, want, notice, nameLocked: !!fromToken });
  prejoin.hide();
  enterMeeting(chosen, prejoin.errors, { audio: media.isOn('audio'), video: media.isOn('video') });
}

function enterMeeting(name, mediaErrors, want, password = null) {
  lastJoin = { name, want, password };
  // The meeting screen appears with `joined`; until then (or `waiting`) the room is "opening".
  showScreen('loading');
  const meeting = new Meeting({
    room,
    name,
    media,
    mediaErrors,
    jwt,
    password,
    rejoinKey: storage.rejoinKey(room),
    onEnd: afterMeeting,
  });
  meeting.start();
}

function afterMeeting({ reason, code, want, retryAfter, byMe }) {
  // Rejoining brings back the devices as they were at the end.
  if (lastJoin) lastJoin.want = want;
  if (reason === 'left') showScreen('left');
  else if (code === 'room-not-found') showScreen('not-found');
  else if (code === 'invalid-name') {
    runPrejoin({ name: lastJoin.name, want, notice: 'name.invalid.server' });
  } else if (PASSWORD_CODES.has(code)) showPassword(code, retryAfter);
  else showError(code, { byMe });
}

async function rejoin(password) {
  if (!lastJoin) {
    location.reload();
    return;
  }
  showScreen('loading');
  const errors = await media.start(lastJoin.want);
  enterMeeting(lastJoin.name, errors, lastJoin.want, password === undefined ? lastJoin.password : password);
}

async function main() {
  initI18n();
  fillIcons();
  setRoomTitle();
  onLangChange(setRoomTitle);

  $('left-rejoin').addEventListener('click', () => rejoin());
  $('error-retry').addEventListener('click', () => {
    const action = $('error-retry').dataset.action;
    if (action === 'reload') location.reload();
    else if (action === 'rename') runPrejoin({ name: lastJoin ? lastJoin.name : '', want: lastJoin ? lastJoin.want : { audio: true, video: true } });
    else rejoin();
  });
  $('password-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('password-input');
    const password = input.value;
    if (!password || Array.from(password).length > 64) {
      setText($('password-error'), 'password.empty');
      $('password-error').hidden = false;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    rejoin(password);
  });

  if (roomNameError(room)) {
    showError('invalid-room');
    return;
  }
  const frag = readLinkParameters(`/${room}`);
  jwt = frag.jwt;
  for (const el of document.querySelectorAll('.room-name')) el.textContent = room;

  // Without WebRTC (some embedded browsers) a meeting would carry neither
  // sound nor picture: say so, and open no socket and no camera.
  if (typeof window.RTCPeerConnection !== 'function') {
    showScreen('no-webrtc');
    return;
  }

  showScreen('loading');
  const res = await api.getRoom(room);
  // A moderator's signed link may open a room no host created yet: with a
  // token, the server decides when we join.
  if (res.status === 404 && !jwt) {
    // Nothing else happens for a room that does not exist: no socket, no camera.
    showScreen('not-found');
    return;
  }
  if (!res.ok && res.status !== 404) {
    showError('unreachable');
    return;
  }

  media = new LocalMedia();
  prejoin = new Prejoin(media);

  const name = usableTokenName() || frag.name;
  if (frag.autojoin && name && !displayNameError(name)) {
    // A link (or a test) that skips the pre-join: devices default to on.
    const want = { audio: frag.mic !== 'off', video: frag.camera !== 'off' };
    const errors = await media.start(want);
    enterMeeting(name.trim(), errors, want);
    return;
  }
  const want = {
    audio: frag.mic ? frag.mic !== 'off' : storage.getBool('micOn', true),
    video: frag.camera ? frag.camera !== 'off' : storage.getBool('cameraOn', true),
  };
  runPrejoin({ name: frag.name || storage.get('name') || '', want });
}

main();
