// Entry module of the room page (/{room}): checks that the room exists,
// shows the pre-join screen (or joins at once from fragment parameters),
// runs the meeting and shows the screens after it.

import * as api from './api.js';
import { $, showScreen } from './dom.js';
import { initI18n, onLangChange, setText, t } from './i18n.js';
import { fillIcons } from './icons.js';
import { LocalMedia } from './media.js';
import { Meeting } from './meeting.js';
import { Prejoin } from './prejoin.js';
import { displayNameError, roomNameError } from './roomname.js';
import * as storage from './storage.js';

// Retry labels per error: what the main button of the error screen does.
const ERROR_ACTIONS = {
  'invalid-room': null,
  unreachable: 'reload',
  'unsupported-version': 'reload',
  'conference-full': 'rejoin',
  'server-shutting-down': 'rejoin',
  internal: 'rejoin',
  'connection-lost': 'rejoin',
  'media-failed': 'rejoin',
};

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
 * Reads `#name=…&autojoin=1&camera=on|off&mic=on|off`, then takes those
 * parameters out of the address bar, so a copied link does not carry
 * someone's name and automatic join along. Fragments never reach the server.
 */
function readFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const frag = {
    name: params.get('name'),
    autojoin: params.get('autojoin') === '1' || params.get('autojoin') === 'true',
    camera: params.get('camera'),
    mic: params.get('mic'),
  };
  ['name', 'autojoin', 'camera', 'mic'].forEach((k) => params.delete(k));
  const rest = params.toString();
  history.replaceState(history.state, '', location.pathname + (rest ? `#${rest}` : ''));
  return frag;
}

const room = roomFromPath();
let media = null;
let prejoin = null;
let lastJoin = null; // {name, want} of the last join, for "rejoin"

function setRoomTitle() {
  document.title = roomNameError(room) ? t('room.pageTitle') : t('room.pageTitleNamed', { room });
}

function showError(code) {
  const known = code in ERROR_ACTIONS || code === 'invalid-name';
  const key = known ? code : 'internal';
  setText($('error-title'), `error.${key}.title`);
  setText($('error-text'), `error.${key}.text`);
  const action = code === 'invalid-name' ? 'rename' : ERROR_ACTIONS[key];
  const retry = $('error-retry');
  retry.hidden = !action;
  if (action) {
    setText(retry, `error.action.${action}`);
    retry.dataset.action = action;
  }
  showScreen('error');
}

async function runPrejoin({ name, want, notice }) {
  showScreen('prejoin');
  const { name: chosen } = await prejoin.show({ name, want, notice });
  prejoin.hide();
  enterMeeting(chosen, prejoin.errors, { audio: media.isOn('audio'), video: media.isOn('video') });
}

function enterMeeting(name, mediaErrors, want) {
  lastJoin = { name, want };
  showScreen('meeting');
  const meeting = new Meeting({ room, name, media, mediaErrors, onEnd: afterMeeting });
  meeting.start();
}

function afterMeeting({ reason, code, want }) {
  // Rejoining brings back the devices as they were at the end.
  if (lastJoin) lastJoin.want = want;
  if (reason === 'left') showScreen('left');
  else if (code === 'room-not-found') showScreen('not-found');
  else if (code === 'invalid-name') {
    runPrejoin({ name: lastJoin.name, want, notice: 'name.invalid.server' });
  } else showError(code);
}

async function rejoin() {
  if (!lastJoin) {
    location.reload();
    return;
  }
  showScreen('loading');
  const errors = await media.start(lastJoin.want);
  enterMeeting(lastJoin.name, errors, lastJoin.want);
}

async function main() {
  initI18n();
  fillIcons();
  setRoomTitle();
  onLangChange(setRoomTitle);

  $('left-rejoin').addEventListener('click', rejoin);
  $('error-retry').addEventListener('click', () => {
    const action = $('error-retry').dataset.action;
    if (action === 'reload') location.reload();
    else if (action === 'rename') runPrejoin({ name: lastJoin ? lastJoin.name : '', want: lastJoin ? lastJoin.want : { audio: true, video: true } });
    else rejoin();
  });

  if (roomNameError(room)) {
    showError('invalid-room');
    return;
  }
  const canonical = `/${room}`;
  if (location.pathname !== canonical) history.replaceState(history.state, '', canonical + location.hash);
  for (const el of document.querySelectorAll('.room-name')) el.textContent = room;

  const frag = readFragment();
  showScreen('loading');
  const res = await api.getRoom(room);
  if (res.status === 404) {
    // Nothing else happens for a room that does not exist: no socket, no camera.
    showScreen('not-found');
    return;
  }
  if (!res.ok) {
    showError('unreachable');
    return;
  }

  media = new LocalMedia();
  prejoin = new Prejoin(media);

  if (frag.autojoin && frag.name && !displayNameError(frag.name)) {
    // A link (or a test) that skips the pre-join: devices default to on.
    const want = { audio: frag.mic !== 'off', video: frag.camera !== 'off' };
    const errors = await media.start(want);
    enterMeeting(frag.name.trim(), errors, want);
    return;
  }
  const want = {
    audio: frag.mic ? frag.mic !== 'off' : storage.getBool('micOn', true),
    video: frag.camera ? frag.camera !== 'off' : storage.getBool('cameraOn', true),
  };
  runPrejoin({ name: frag.name || storage.get('name') || '', want });
}

main();
