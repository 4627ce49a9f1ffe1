// Room-name rules from docs/protocol.md ("Room names"), shared by the start
// page (join / create forms) and the room page (reading location.pathname).

const RESERVED = new Set(['api', 'assets', 'ws', 'privacy', 'healthz', 'metrics', 'setup']);
const VALID = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/**
 * Turns what a person typed or pasted into a candidate room name: a pasted
 * link keeps only its path, case is folded, runs of spaces become one '-'.
 */
export function normalizeRoomName(input) {
  let s = String(input ?? '').trim();
  if (/^https?:\/\//i.test(s)) {
    try {
      s = new URL(s).pathname;
    } catch {
      // Not a URL after all: validate it as typed.
    }
  }
  s = s.replace(/^\/+|\/+$/g, '');
  try {
    s = decodeURIComponent(s);
  } catch {
    // Broken %-escapes simply fail validation below.
  }
  return s.toLowerCase().replace(/\s+/g, '-');
}

/** Returns null when `name` is a valid room name, else an i18n key explaining why not. */
export function roomNameError(name) {
  if (!name) return 'room.invalid.empty';
  if (name.length > 64) return 'room.invalid.long';
  if (RESERVED.has(name)) return 'room.invalid.reserved';
  if (!/^[a-z0-9]/.test(name)) return 'room.invalid.start';
  if (!VALID.test(name)) return 'room.invalid.chars';
  return null;
}

/** Display-name rules from the protocol's `join`: 1–64 characters after trimming, no control characters. */
export function displayNameError(name) {
  const trimmed = String(name ?? '').trim();
  if (!trimmed) return 'name.invalid.empty';
  if (Array.from(trimmed).length > 64) return 'name.invalid.long';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(trimmed)) return 'name.invalid.chars';
  return null;
}
