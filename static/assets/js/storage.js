// Everything this client remembers lives in localStorage under one prefix, so
// "Forget me on this device" can clear it completely (privacy promise P8).
// The only other thing kept is a random per-room key in sessionStorage (gone
// when the tab closes), which lets the server recognise a participant who was
// removed and barred. No cookies are ever written from JavaScript.

const PREFIX = 'zaal.';
const MAX_RECENT = 8;

export function get(key) {
  try {
    return localStorage.getItem(PREFIX + key);
  } catch {
    // Storage may be disabled (private mode, policy): behave as "nothing saved".
    return null;
  }
}

export function set(key, value) {
  try {
    if (value === null || value === undefined) localStorage.removeItem(PREFIX + key);
    else localStorage.setItem(PREFIX + key, String(value));
  } catch {
    // Not being able to remember something is never fatal.
  }
}

export function getBool(key, fallback) {
  const v = get(key);
  if (v === 'true') return true;
  if (v === 'false') return false;
  return fallback;
}

export function recentRooms() {
  try {
    const list = JSON.parse(get('recentRooms') || '[]');
    return Array.isArray(list) ? list.filter((r) => typeof r === 'string') : [];
  } catch {
    return [];
  }
}

export function addRecentRoom(room) {
  const list = recentRooms().filter((r) => r !== room);
  list.unshift(room);
  set('recentRooms', JSON.stringify(list.slice(0, MAX_RECENT)));
}

const REJOIN_KEY = /^[A-Za-z0-9_-]{16,64}$/;
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const rejoinFallback = new Map(); // when sessionStorage is unavailable: for this page's life

/** `length` random characters of the base64url alphabet (64 symbols: every byte maps without bias). */
export function randomKey(length = 24) {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (b) => BASE64URL[b & 63]).join('');
}

/**
 * The random key this tab sends as `rejoinKey` in every `join` of `room`
 * (docs/protocol.md): made once per room and tab, kept in sessionStorage.
 */
export function rejoinKey(room) {
  const key = `${PREFIX}rejoin.${room}`;
  try {
    let value = sessionStorage.getItem(key);
    if (!value || !REJOIN_KEY.test(value)) {
      value = randomKey();
      sessionStorage.setItem(key, value);
    }
    return value;
  } catch {
    if (!rejoinFallback.has(room)) rejoinFallback.set(room, randomKey());
    return rejoinFallback.get(room);
  }
}

function removePrefixed(store) {
  const keys = [];
  for (let i = 0; i < store.length; i++) {
    const k = store.key(i);
    if (k && k.startsWith(PREFIX)) keys.push(k);
  }
  keys.forEach((k) => store.removeItem(k));
}

/** Removes every key this client ever wrote, and nothing else of the origin. */
export function forgetAll() {
  for (const name of ['localStorage', 'sessionStorage']) {
    try {
      removePrefixed(window[name]);
    } catch {
      // Nothing stored that we could reach.
    }
  }
}
