// Everything this client remembers lives in localStorage under one prefix, so
// "Forget me on this device" can clear it completely (privacy promise P8).
// No cookies are ever written from JavaScript.

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

/** Removes every key this client ever wrote, and nothing else of the origin. */
export function forgetAll() {
  try {
    const keys = [];
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      if (k && k.startsWith(PREFIX)) keys.push(k);
    }
    keys.forEach((k) => localStorage.removeItem(k));
  } catch {
    // Nothing stored that we could reach.
  }
}
